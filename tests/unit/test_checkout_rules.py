"""register_checkout() and claim_guest_checkout(): business rules, effects and webhooks."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from services.contract.examples import seed_item_level_checkout
from services.contract.inbound import CheckoutEvent
from services.domain.checkout import claim_guest_checkout, register_checkout
from services.domain.customer import Customer, Movement
from services.domain.effects import Effects, EventMeta, Parked, Rejected
from services.domain.lifecycle import reject_checkout
from services.domain.program import Program
from services.domain.refunds import partial_refund, refund, refund_item
from services.domain.transaction import Status, Transaction
from services.service_layer.actions import to_checkout
from tests.unit.builders import (
    AT,
    BIG_BASKET,
    CUSTOMER,
    PENDING_SECONDS,
    checkout,
    guest_event,
    make_program,
    seed,
    seed_computed,
    seed_earning_45,
    seed_event,
)

SEED_ITEM_LEVEL = seed_item_level_checkout()


PROGRAM = make_program()
PENDING_PROGRAM = make_program(pending_period={"seconds": PENDING_SECONDS})


def effects(action: str = "checkout", at: datetime = AT) -> Effects:
    return Effects(EventMeta("acme", "key-1", action, at))


def rich_customer(spendable: int = 100) -> Customer:
    return Customer(program="acme", customer_id=CUSTOMER, score=spendable, spendable=spendable)


def balances(c: Customer) -> tuple[int, int, int, int]:
    return (c.score, c.spendable, c.pending, c.spent)


def state(c: Customer) -> tuple[Any, ...]:
    return (*balances(c), c.purchase_total, c.purchase_count, c.purchase_items, c.purchase_first_date)


def hook_types(fx: Effects) -> list[str]:
    return [w.type for w in fx.webhooks]


# --- Accepted at once ---------------------------------------------------------------------------


def test_seed_item_level_checkout_is_accepted_at_once() -> None:
    c = rich_customer(100)
    fx = effects()
    txn = register_checkout(PROGRAM, seed(), c, None, fx)

    assert txn.status is Status.accepted
    assert txn.transaction_id == "1703545579"
    assert txn.customer == CUSTOMER
    assert txn.guest is False
    assert txn.currency == "EUR"
    assert txn.total == Decimal(150)
    # Every item carries partner-computed points: exactly those, no campaign bonus on top.
    assert txn.points_base == 30
    assert txn.points_bonus == 0
    assert txn.campaigns == []
    assert txn.points_earned == 30
    assert txn.points_pending == 0
    assert txn.points_burned == 10
    assert [i.points_rewarded for i in txn.items] == [20, 10]
    assert [i.points_burned for i in txn.items] == [7, 3]
    assert sum(i.points_burned for i in txn.items) == 10
    assert txn.accepted_at == AT
    assert txn.auto_accept_at is None
    assert txn.occurred_at == txn.created_at == txn.updated_at == AT

    # 100 - 10 burned + 30 earned
    assert balances(c) == (130, 120, 0, 10)
    assert c.purchase_total == Decimal(150)
    assert c.purchase_count == 1
    assert c.purchase_items == Decimal(3)
    assert c.purchase_first_date == c.purchase_last_date == AT

    assert hook_types(fx) == ["transaction.created", "points.burned", "points.earned", "transaction.accepted"]
    created = fx.webhooks[0]
    assert created.customer == CUSTOMER
    assert created.data["transaction"]["points_earned"] == 30
    burned = fx.webhooks[1]
    assert burned.data["points"] == 10
    assert burned.data["balances"] == {"score": 100, "spendable": 90, "pending": 0, "spent": 10}
    earned = fx.webhooks[2]
    assert earned.data["points"] == 30
    assert earned.data["transaction_id"] == "1703545579"
    assert earned.data["negative_spendable"] is False

    assert len(fx.status_changes) == 1
    change = fx.status_changes[0]
    assert change.from_status is None
    assert change.to_status is Status.accepted
    assert change.transaction["transaction_id"] == "1703545579"

    assert fx.points["points_earned"] == 30
    assert fx.points["points_burned"] == 10
    assert fx.points["points_pending"] == 0
    assert [(e.movement, e.points) for e in fx.ledger] == [(Movement.burned, 10), (Movement.earned, 30)]
    assert all(e.event_key == "key-1" and e.at == AT for e in fx.ledger)


def test_spendable_exactly_equal_to_the_burn_is_enough() -> None:
    c = rich_customer(10)
    txn = register_checkout(PROGRAM, seed_earning_45(), c, None, effects())
    assert txn.status is Status.accepted
    assert c.spendable == 0 + 45


def test_checkout_without_burn_emits_no_burn_webhook() -> None:
    c = Customer(program="acme", customer_id=CUSTOMER)
    fx = effects()
    register_checkout(PROGRAM, seed(points_burned=0), c, None, fx)
    assert hook_types(fx) == ["transaction.created", "points.earned", "transaction.accepted"]
    assert [e.movement for e in fx.ledger] == [Movement.earned]


def test_transaction_level_program_earns_on_the_total() -> None:
    p = make_program(earn={"level": "transaction", "points_per_unit": 2})
    c = rich_customer()
    txn = register_checkout(p, seed_computed(), c, None, effects())
    assert txn.points_base == 300
    assert txn.points_bonus == 0
    assert [i.points_rewarded for i in txn.items] == [0, 0]
    assert txn.points_earned == 300


def test_transaction_points_rewarded_override() -> None:
    c = rich_customer()
    txn = register_checkout(PROGRAM, seed(points_rewarded=99), c, None, effects())
    assert (txn.points_base, txn.points_bonus, txn.points_earned) == (99, 0, 99)
    assert txn.campaigns == []


def test_item_subtotal_derived_when_absent() -> None:
    body = copy.deepcopy(SEED_ITEM_LEVEL)
    for it in body["data"]["items"]:
        del it["subtotal"]
        del it["points_rewarded"]
    c = rich_customer()
    txn = register_checkout(PROGRAM, checkout(body), c, None, effects())
    assert [i.subtotal for i in txn.items] == [Decimal(95), Decimal(50)]
    assert [i.points_rewarded for i in txn.items] == [95, 50]


# --- Pending period -----------------------------------------------------------------------------


def test_pending_period_holds_points_as_pending() -> None:
    c = rich_customer(100)
    fx = effects()
    txn = register_checkout(PENDING_PROGRAM, seed_earning_45(), c, None, fx)
    assert txn.status is Status.pending
    assert txn.auto_accept_at == AT + timedelta(seconds=PENDING_SECONDS)
    assert txn.accepted_at is None
    assert txn.points_pending == 45
    assert txn.points_earned == 0
    assert balances(c) == (100, 90, 45, 10)
    assert c.purchase_total == Decimal(0)
    assert c.purchase_count == 0
    assert c.purchase_first_date is None
    assert hook_types(fx) == ["transaction.created", "points.burned", "points.pending"]
    assert fx.points["points_pending"] == 45
    assert fx.points["points_earned"] == 0
    assert [(s.from_status, s.to_status) for s in fx.status_changes] == [(None, Status.pending)]


def test_pending_auto_accept_from_the_event_wins() -> None:
    when = "2024-03-05T00:00:00+00:00"
    txn = register_checkout(PENDING_PROGRAM, seed(auto_accept=when), rich_customer(), None, effects())
    assert txn.auto_accept_at == datetime(2024, 3, 5, tzinfo=UTC)


# --- Rejections ---------------------------------------------------------------------------------


def test_burn_larger_than_spendable_is_rejected_and_changes_nothing() -> None:
    c = rich_customer(9)
    before = state(c)
    fx = effects()
    with pytest.raises(Rejected) as exc:
        register_checkout(PROGRAM, seed(), c, None, fx)
    assert exc.value.code == "insufficient_points"
    assert state(c) == before
    assert fx.ledger == [] and fx.webhooks == [] and fx.status_changes == []


def test_guest_checkout_credits_nobody() -> None:
    fx = effects()
    txn = register_checkout(PROGRAM, guest_event(), None, None, fx)
    assert txn.guest is True
    assert txn.customer is None
    assert txn.status is Status.accepted
    assert txn.points_to_earn == 45
    assert txn.points_earned == 0
    assert txn.points_pending == 0
    assert fx.ledger == []
    assert hook_types(fx) == ["transaction.created", "transaction.accepted"]
    assert all(w.customer is None for w in fx.webhooks)
    assert all(v == 0 for v in fx.points.values())


def test_guest_checkout_with_points_burned_is_rejected() -> None:
    fx = effects()
    with pytest.raises(Rejected) as exc:
        register_checkout(PROGRAM, guest_event(points_burned=5), None, None, fx)
    assert exc.value.code == "guest_cannot_burn"
    assert fx.webhooks == []


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.draft])
def test_second_checkout_of_an_existing_transaction_is_rejected(status: Status) -> None:
    existing = register_checkout(PROGRAM, seed(), rich_customer(), None, effects())
    existing.status = status
    c = rich_customer()
    before = state(c)
    with pytest.raises(Rejected) as exc:
        register_checkout(PROGRAM, seed(), c, existing, effects())
    assert exc.value.code == "transaction_exists"
    assert state(c) == before


def test_checkout_over_a_draft_takes_its_own_creation_time() -> None:
    """The draft was only a placeholder: the state must not depend on arrival order."""
    draft = register_checkout(PROGRAM, seed(), rich_customer(), None, effects(at=AT - timedelta(hours=1)))
    draft.status = Status.draft
    fx = effects()
    txn = register_checkout(PROGRAM, seed(), rich_customer(), draft, fx)
    assert txn.status is Status.accepted
    assert txn.created_at == AT
    assert txn.updated_at == AT
    # The purchase date: the repository's refresh of purchase dates reads created_at.
    assert txn.occurred_at == txn.created_at
    assert [(s.from_status, s.to_status) for s in fx.status_changes] == [(Status.draft, Status.accepted)]


def test_currency_without_rate_is_rejected() -> None:
    c = rich_customer()
    before = state(c)
    with pytest.raises(Rejected) as exc:
        register_checkout(PROGRAM, seed(currency="USD"), c, None, effects())
    assert exc.value.code == "currency_not_supported"
    assert state(c) == before


def test_currency_with_exchange_rate_is_converted() -> None:
    p = make_program(
        exchange_rates={"USD": "0.5"},
        earn={"level": "transaction", "campaigns": [BIG_BASKET]},
    )
    c = rich_customer(100)
    txn = register_checkout(p, seed_computed(currency="usd"), c, None, effects())
    assert txn.currency == "USD"
    assert txn.rate == Decimal("0.5")
    assert txn.total == Decimal(150)
    assert txn.converted_total == Decimal(75)
    assert txn.points_base == 75
    assert txn.points_bonus == 0  # 75 converted < min_total 100
    assert c.purchase_total == Decimal(75)


def test_program_currency_given_explicitly_needs_no_rate() -> None:
    txn = register_checkout(PROGRAM, seed(currency="eur"), rich_customer(), None, effects())
    assert txn.rate == Decimal(1)
    assert txn.currency == "EUR"


METADATA_SCHEMA = {
    "type": "object",
    "properties": {"channel": {"type": "string", "enum": ["web", "pos", "app"]}},
    "required": ["channel"],
}


@pytest.mark.parametrize("metadata", [{"channel": "fax"}, {}, {"channel": 3}])
def test_metadata_violating_the_schema_is_rejected(metadata: dict[str, Any]) -> None:
    p = make_program(metadata_schema=METADATA_SCHEMA)
    c = rich_customer()
    before = state(c)
    with pytest.raises(Rejected) as exc:
        register_checkout(p, seed(metadata=metadata), c, None, effects())
    assert exc.value.code == "invalid_metadata"
    assert "metadata" in exc.value.message
    assert state(c) == before


def test_metadata_matching_the_schema_is_kept() -> None:
    p = make_program(metadata_schema=METADATA_SCHEMA)
    txn = register_checkout(p, seed(metadata={"channel": "web"}), rich_customer(), None, effects())
    assert txn.metadata == {"channel": "web"}


def test_campaign_window_uses_the_effective_event_time() -> None:
    p = make_program(
        earn={
            "level": "item",
            "campaigns": [{"id": "jan", "points": 15, "conditions": {"ends_at": "2024-02-01T00:00:00Z"}}],
        }
    )
    event = seed_event()
    assert event.occurred_at is None
    txn = register_checkout(p, to_checkout(event), rich_customer(), None, effects(at=AT))  # AT is in March
    assert txn.points_bonus == 0


def test_item_with_discount_above_its_price_is_invalid() -> None:
    """Refused by the contract (a DLQ record), so it can never reach the points math."""
    body = copy.deepcopy(SEED_ITEM_LEVEL)
    body["data"]["items"] = [{"product_id": "x", "price": 10, "quantity": 1, "discount": 20}]
    with pytest.raises(ValidationError, match="discount exceeds"):
        CheckoutEvent.model_validate(body)


# --- Guest claims -------------------------------------------------------------------------------


def guest_txn(program: Program = PROGRAM) -> Transaction:
    return register_checkout(program, guest_event(), None, None, effects())


def test_claim_of_an_accepted_guest_checkout_credits_points_and_purchase() -> None:
    txn = guest_txn()
    c = Customer(program="acme", customer_id=CUSTOMER)
    later = AT + timedelta(days=1)
    fx = effects("checkout_claim", later)
    claim_guest_checkout(c, txn, fx)
    assert txn.customer == CUSTOMER
    assert txn.updated_at == later
    assert txn.points_earned == 45
    assert balances(c) == (45, 45, 0, 0)
    assert c.purchase_total == Decimal(150)
    assert c.purchase_count == 1
    assert c.purchase_first_date == AT  # the purchase's own time, not the claim's
    assert hook_types(fx) == ["points.earned", "transaction.claimed"]
    assert fx.webhooks[-1].customer == CUSTOMER
    assert fx.points["points_earned"] == 45
    assert [(e.movement, e.points) for e in fx.ledger] == [(Movement.earned, 45)]


def test_claim_of_a_pending_guest_checkout_gives_pending_points() -> None:
    txn = guest_txn(PENDING_PROGRAM)
    assert txn.status is Status.pending
    c = Customer(program="acme", customer_id=CUSTOMER)
    fx = effects("checkout_claim")
    claim_guest_checkout(c, txn, fx)
    assert txn.points_pending == 45
    assert txn.points_earned == 0
    assert balances(c) == (0, 0, 45, 0)
    assert c.purchase_count == 0
    assert c.purchase_total == Decimal(0)
    assert hook_types(fx) == ["points.pending", "transaction.claimed"]


def test_claiming_twice_is_rejected() -> None:
    txn = guest_txn()
    c = Customer(program="acme", customer_id=CUSTOMER)
    claim_guest_checkout(c, txn, effects("checkout_claim"))
    before = state(c)
    other = Customer(program="acme", customer_id="someone-else")
    for who in (c, other):
        fx = effects("checkout_claim")
        with pytest.raises(Rejected) as exc:
            claim_guest_checkout(who, txn, fx)
        assert exc.value.code == "already_claimed"
        assert fx.ledger == [] and fx.webhooks == []
    assert state(c) == before
    assert balances(other) == (0, 0, 0, 0)
    assert txn.customer == CUSTOMER


def test_claiming_a_customer_checkout_is_rejected() -> None:
    txn = register_checkout(PROGRAM, seed(), rich_customer(), None, effects())
    c = Customer(program="acme", customer_id="other")
    with pytest.raises(Rejected) as exc:
        claim_guest_checkout(c, txn, effects("checkout_claim"))
    assert exc.value.code == "not_a_guest_checkout"
    assert txn.customer == CUSTOMER
    assert balances(c) == (0, 0, 0, 0)


def test_claiming_a_draft_parks_until_its_checkout_arrives() -> None:
    txn = guest_txn()
    txn.status = Status.draft
    c = Customer("acme", CUSTOMER)
    with pytest.raises(Parked) as exc:
        claim_guest_checkout(c, txn, effects("checkout_claim"))
    assert exc.value.code == "awaiting_checkout"
    assert txn.customer is None and c.score == 0


CHANGES: dict[str, Callable[[Customer | None, Transaction, Effects], None]] = {
    "reject": reject_checkout,
    "partial_refund": lambda c, txn, fx: partial_refund(c, txn, Decimal("33.30"), [], fx),
    "refund_item": lambda c, txn, fx: refund_item(c, txn, "001", Decimal(1), None, [], fx),
    "refund": lambda c, txn, fx: refund(c, txn, [], fx),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_claim_commutes_with_a_change_sent_on_another_partition(change: str) -> None:
    """A claim is keyed by its customer, a guest checkout's reject or refunds by the transaction:
    either arrives first, and both orders end in the same state (DESIGN.md 5.3)."""

    def run(claim_first: bool) -> tuple[Any, ...]:
        txn = guest_txn(PENDING_PROGRAM if change == "reject" else PROGRAM)
        c = Customer("acme", CUSTOMER)

        def do_claim() -> None:
            claim_guest_checkout(c, txn, effects("checkout_claim", AT + timedelta(hours=1)))

        def do_change() -> None:
            CHANGES[change](c if txn.customer else None, txn, effects(change, AT + timedelta(hours=2)))

        for step in (do_claim, do_change) if claim_first else (do_change, do_claim):
            step()
        # Purchase dates after a full refund are recomputed from the stored purchases.
        return txn.snapshot(), balances(c), c.purchase_total, c.purchase_count, c.purchase_items

    claim_first, change_first = run(True), run(False)
    assert claim_first == change_first
    assert claim_first[0]["customer"] == CUSTOMER


def test_effects_move_of_zero_points_records_nothing() -> None:
    fx = effects()
    c = rich_customer()
    fx.move(c, Movement.earned, 0, "t")
    assert fx.ledger == [] and fx.webhooks == []
    assert fx.points["points_earned"] == 0
    assert balances(c) == (100, 100, 0, 0)
