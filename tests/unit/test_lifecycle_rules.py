"""Pending-period rules: update_checkout, accept_checkout, reject_checkout, unspend_points,
expire_pending and check_customer. Business rules, ledger movements, status changes, webhooks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.contract.examples import seed_item_level_checkout
from services.contract.inbound import CheckoutUpdateEvent
from services.domain.checkout import register_checkout
from services.domain.customer import Customer, LedgerEntry, Movement
from services.domain.effects import Effects, Parked, Rejected
from services.domain.lifecycle import (
    accept_checkout,
    check_customer,
    expire_pending,
    reject_checkout,
    unspend_points,
    update_checkout,
)
from services.domain.program import Program
from services.domain.purchase import CheckoutUpdate
from services.domain.transaction import Status, Transaction
from services.service_layer.actions import to_checkout_update
from tests.unit import builders
from tests.unit.builders import (
    AT,
    CUSTOMER,
    LATER,
    PENDING_SECONDS,
    TID,
    balances,
    effects,
    guest_event,
    rich_customer,
    seed_computed,
    seed_earning_45,
)

DUE = AT + timedelta(seconds=PENDING_SECONDS)

SEED_ITEM_LEVEL = seed_item_level_checkout()


def make_program(**fields: Any) -> Program:
    """The shared program, with a pending period unless told otherwise."""
    return builders.make_program(**{"pending_period": {"seconds": PENDING_SECONDS}, **fields})


PROGRAM = make_program()
REJECT_ON_EXPIRY = make_program(pending_period={"seconds": PENDING_SECONDS, "on_expiry": "reject"})


def update_event(
    total: Any = 200, subtotals: list[Any] | None = None, customer: str | None = CUSTOMER, **data: Any
) -> CheckoutUpdate:
    """A checkout_update as the rule gets it (validated by the contract, then translated); by
    default one item whose subtotal is the whole total."""
    items = [{"product_id": f"p{i}", "subtotal": s} for i, s in enumerate(subtotals or [total])]
    body: dict[str, Any] = {
        "action": "checkout_update",
        "data": {"transaction_id": TID, "total": total, "items": items, **data},
    }
    if customer is not None:
        body["customer"] = customer
    return to_checkout_update(CheckoutUpdateEvent.model_validate(body))


def state(c: Customer) -> tuple[Any, ...]:
    return (
        *balances(c),
        c.purchase_total,
        c.purchase_count,
        c.purchase_items,
        c.purchase_first_date,
        c.purchase_last_date,
    )


def hook_types(fx: Effects) -> list[str]:
    return [w.type for w in fx.webhooks]


def moves(fx: Effects) -> list[tuple[Movement, int]]:
    return [(e.movement, e.points) for e in fx.ledger]


def nothing_recorded(fx: Effects) -> bool:
    return fx.ledger == [] and fx.webhooks == [] and fx.status_changes == []


def pending_txn(
    c: Customer | None = None, program: Program = PROGRAM, computed: bool = False, **data: Any
) -> tuple[Customer, Transaction]:
    """The seed checkout (45 points pending, 10 burned) for a customer with 100 spendable:
    balances (100, 90, 45, 10). ``computed``: its items priced by the program's rules instead."""
    c = rich_customer() if c is None else c
    event = seed_computed(**data) if computed else seed_earning_45(**data)
    txn = register_checkout(program, event, c, None, effects())
    assert txn.status is Status.pending
    return c, txn


def guest_pending_txn() -> Transaction:
    txn = register_checkout(PROGRAM, guest_event(), None, None, effects())
    assert txn.status is Status.pending and txn.customer is None
    return txn


def accept(c: Customer | None, txn: Transaction, at: datetime = LATER) -> Effects:
    fx = effects("checkout_accept", at)
    accept_checkout(c, txn, fx)
    return fx


def reject(c: Customer | None, txn: Transaction, at: datetime = LATER) -> Effects:
    fx = effects("checkout_reject", at)
    reject_checkout(c, txn, fx)
    return fx


def unspend(c: Customer | None, txn: Transaction, at: datetime = LATER) -> Effects:
    fx = effects("point_unspend", at)
    unspend_points(c, txn, fx)
    return fx


def update(c: Customer | None, txn: Transaction, event: CheckoutUpdate, at: datetime = LATER) -> Effects:
    fx = effects("checkout_update", at)
    update_checkout(PROGRAM, event, c, txn, fx)
    return fx


def txn_in(status: Status) -> tuple[Customer, Transaction]:
    """A customer's transaction brought to ``status`` the way the engine would (refund statuses
    set by hand on an accepted transaction, as refunds are not part of this module)."""
    c, txn = pending_txn()
    if status is Status.pending:
        return c, txn
    if status is Status.rejected:
        reject(c, txn)
        return c, txn
    accept(c, txn)
    if status is not Status.accepted:
        txn.status = status
    return c, txn


FINAL_STATUSES = [Status.accepted, Status.rejected, Status.partially_refunded, Status.refunded]


# --- Update -------------------------------------------------------------------------------------


def test_update_with_more_points_raises_pending_by_the_difference() -> None:
    c, txn = pending_txn()
    assert balances(c) == (100, 90, 45, 10)
    fx = update(c, txn, update_event(total=200))

    # 200 base (one item, 1 point per unit) + 15 big-basket bonus
    assert txn.total == Decimal(200)
    assert (txn.points_base, txn.points_bonus) == (200, 15)
    assert [(cp.campaign, cp.points) for cp in txn.campaigns] == [("big-basket", 15)]
    assert [(i.product_id, i.subtotal, i.points_rewarded, i.points_burned) for i in txn.items] == [
        ("p0", Decimal(200), 200, 10)
    ]
    assert txn.points_pending == txn.points_to_earn == 215
    assert txn.points_earned == 0
    assert txn.points_burned == 10
    assert balances(c) == (100, 90, 215, 10)
    assert c.pending == txn.points_to_earn

    assert moves(fx) == [(Movement.pending, 170)]
    assert all(e.transaction_id == TID and e.at == LATER for e in fx.ledger)
    assert fx.points["points_pending"] == 170
    assert hook_types(fx) == ["points.pending", "transaction.updated"]
    updated = fx.webhooks[-1]
    assert updated.customer == CUSTOMER
    assert updated.data["transaction"]["points_pending"] == 215
    assert updated.data["transaction"]["total"] == "200.00"
    assert fx.status_changes == []

    assert txn.status is Status.pending
    assert txn.updated_at == LATER
    assert txn.occurred_at == txn.created_at == AT
    assert txn.accepted_at is None and txn.rejected_at is None
    assert txn.auto_accept_at == DUE
    assert c.purchase_count == 0


def test_update_with_fewer_points_drops_pending_by_the_difference() -> None:
    c, txn = pending_txn()
    fx = update(c, txn, update_event(total=20))

    assert (txn.points_base, txn.points_bonus) == (20, 0)  # under big-basket's min_total
    assert txn.campaigns == []
    assert txn.points_pending == txn.points_to_earn == 20
    assert balances(c) == (100, 90, 20, 10)
    assert moves(fx) == [(Movement.pending_dropped, 25)]
    assert hook_types(fx) == ["transaction.updated"]


def test_update_with_the_same_points_moves_nothing() -> None:
    c, txn = pending_txn()
    # 30 base + 15 bonus, as the seed
    fx = update(c, txn, update_event(total=150, subtotals=[20, 10]))
    assert txn.points_to_earn == txn.points_pending == 45
    assert balances(c) == (100, 90, 45, 10)
    assert fx.ledger == []
    assert hook_types(fx) == ["transaction.updated"]
    assert [i.subtotal for i in txn.items] == [Decimal(20), Decimal(10)]


def test_update_replaces_items_entirely() -> None:
    c, txn = pending_txn()
    assert len(txn.items) == 2
    update(c, txn, update_event(total=30, subtotals=[10, 10, 10]))
    assert [i.product_id for i in txn.items] == ["p0", "p1", "p2"]
    assert [i.points_rewarded for i in txn.items] == [10, 10, 10]
    assert sum(i.points_burned for i in txn.items) == 10
    assert txn.points_pending == c.pending == 30


def test_update_with_partner_points_rewarded_overrides_the_earn() -> None:
    c, txn = pending_txn()
    fx = update(c, txn, update_event(total=200, points_rewarded=7))
    assert (txn.points_base, txn.points_bonus) == (7, 0)
    assert txn.points_pending == c.pending == 7
    assert moves(fx) == [(Movement.pending_dropped, 38)]


def test_update_to_a_higher_burn_burns_the_difference() -> None:
    c, txn = pending_txn()
    fx = update(c, txn, update_event(total=150, subtotals=[20, 10], points_burned=30))
    assert txn.points_burned == 30
    assert sum(i.points_burned for i in txn.items) == 30
    assert balances(c) == (100, 70, 45, 30)
    assert moves(fx) == [(Movement.burned, 20)]
    assert fx.points["points_burned"] == 20
    assert hook_types(fx) == ["points.burned", "transaction.updated"]


def test_update_may_burn_exactly_the_spendable() -> None:
    c, txn = pending_txn()
    update(c, txn, update_event(total=150, subtotals=[20, 10], points_burned=100))
    assert balances(c) == (100, 0, 45, 100)
    assert txn.points_burned == 100


def test_update_burning_beyond_spendable_is_rejected_and_changes_nothing() -> None:
    c, txn = pending_txn()
    before_c, before_t = state(c), txn.snapshot()
    fx = effects("checkout_update", LATER)
    with pytest.raises(Rejected) as exc:
        # 91 more than the 10 already burned; spendable is 90
        update_checkout(PROGRAM, update_event(total=500, points_burned=101), c, txn, fx)
    assert exc.value.code == "insufficient_points"
    assert state(c) == before_c
    assert txn.snapshot() == before_t
    assert nothing_recorded(fx)


def test_update_to_a_lower_burn_restores_the_difference() -> None:
    c, txn = pending_txn()
    fx = update(c, txn, update_event(total=150, subtotals=[20, 10], points_burned=4))
    assert txn.points_burned == 4
    assert txn.points_restored == 0  # the burn itself is lower; nothing to unspend later
    assert sum(i.points_burned for i in txn.items) == 4
    assert balances(c) == (100, 96, 45, 4)
    assert moves(fx) == [(Movement.restored, 6)]
    assert fx.points["points_restored"] == 6
    assert hook_types(fx) == ["points.restored", "transaction.updated"]


def test_update_lowering_the_burn_needs_no_spendable() -> None:
    c, txn = pending_txn(rich_customer(10))
    assert c.spendable == 0
    update(c, txn, update_event(total=150, subtotals=[20, 10], points_burned=0))
    assert balances(c) == (10, 10, 45, 0)
    assert txn.points_burned == 0


def test_update_without_points_burned_keeps_the_burn() -> None:
    c, txn = pending_txn()
    fx = update(c, txn, update_event(total=40, subtotals=[28, 12]))
    assert txn.points_burned == 10
    assert [i.points_burned for i in txn.items] == [7, 3]
    assert balances(c) == (100, 90, 40, 10)
    assert moves(fx) == [(Movement.pending_dropped, 5)]


def test_update_with_burn_and_points_changes_records_both_movements() -> None:
    c, txn = pending_txn()
    fx = update(c, txn, update_event(total=300, points_burned=50))
    assert txn.points_to_earn == 315
    assert balances(c) == (100, 50, 315, 50)
    assert moves(fx) == [(Movement.burned, 40), (Movement.pending, 270)]


def test_update_auto_accept_moves_the_due_date() -> None:
    c, txn = pending_txn()
    assert txn.auto_accept_at == DUE
    new_due = datetime(2024, 4, 1, tzinfo=UTC)
    update(c, txn, update_event(auto_accept="2024-04-01T00:00:00+00:00"))
    assert txn.auto_accept_at == new_due

    # The timer claimed for the old due date no longer fires ...
    fx = effects("auto_expire", DUE)
    with pytest.raises(Rejected) as exc:
        expire_pending(PROGRAM, c, txn, fx)
    assert exc.value.code == "not_due"
    assert txn.status.value == "pending" and nothing_recorded(fx)
    # ... the one for the new date does.
    expire_pending(PROGRAM, c, txn, effects("auto_expire", new_due))
    assert txn.status is Status.accepted


def test_update_without_auto_accept_keeps_the_due_date() -> None:
    c, txn = pending_txn()
    update(c, txn, update_event())
    assert txn.auto_accept_at == DUE


def test_update_replaces_store_metadata_and_currency_when_given() -> None:
    p = make_program(exchange_rates={"USD": "0.5"})
    c, txn = pending_txn(program=p)
    fx = effects("checkout_update", LATER)
    event = update_event(total=200, currency="usd", store="s-9", metadata={"channel": "web"})
    update_checkout(p, event, c, txn, fx)
    assert txn.currency == "USD"
    assert txn.rate == Decimal("0.5")
    assert txn.store == "s-9"
    assert txn.metadata == {"channel": "web"}
    # 200 USD = 100 EUR: 100 base + 15 bonus (converted total reaches min_total 100)
    assert (txn.points_base, txn.points_bonus) == (100, 15)
    assert c.pending == txn.points_pending == 115


def test_update_earns_by_the_rules_at_the_purchase_time() -> None:
    """A campaign that ended between purchase and update still applies; one that started
    after the purchase does not."""
    p = make_program(
        earn={
            "level": "item",
            "campaigns": [
                {"id": "ended", "points": 5, "conditions": {"ends_at": "2024-03-02T00:00:00Z"}},
                {"id": "later", "points": 7, "conditions": {"starts_at": "2024-03-03T00:00:00Z"}},
            ],
        }
    )
    c, txn = pending_txn(program=p, computed=True)
    assert [cp.campaign for cp in txn.campaigns] == ["ended"]
    fx = effects("checkout_update", datetime(2024, 3, 5, tzinfo=UTC))
    update_checkout(p, update_event(total=40), c, txn, fx)
    assert [(cp.campaign, cp.points) for cp in txn.campaigns] == [("ended", 5)]
    assert (txn.points_base, txn.points_bonus) == (40, 5)
    assert c.pending == txn.points_pending == 45
    assert txn.occurred_at == AT


def test_update_without_currency_keeps_pricing_in_the_transaction_currency() -> None:
    p = make_program(exchange_rates={"USD": "0.5"}, earn={"level": "transaction"})
    c, txn = pending_txn(program=p, computed=True, currency="USD")
    assert (txn.currency, txn.rate, txn.points_to_earn) == ("USD", Decimal("0.5"), 75)
    fx = effects("checkout_update", LATER)
    update_checkout(p, update_event(total=150), c, txn, fx)
    assert txn.currency == "USD"
    assert txn.rate == Decimal("0.5")
    assert txn.points_to_earn == txn.points_pending == c.pending == 75


def test_update_without_store_keeps_store_campaigns() -> None:
    p = make_program(
        earn={
            "level": "transaction",
            "campaigns": [{"id": "shop", "points": 9, "conditions": {"stores": ["s1"]}}],
        }
    )
    c, txn = pending_txn(program=p, computed=True, store="s1")
    assert txn.points_bonus == 9
    fx = effects("checkout_update", LATER)
    update_checkout(p, update_event(total=150), c, txn, fx)
    assert txn.store == "s1"
    assert txn.points_bonus == 9


def test_update_without_metadata_keeps_valid_metadata() -> None:
    schema = {"type": "object", "properties": {"channel": {"type": "string"}}, "required": ["channel"]}
    p = make_program(metadata_schema=schema)
    c, txn = pending_txn(program=p, metadata={"channel": "web"})
    fx = effects("checkout_update", LATER)
    update_checkout(p, update_event(total=150), c, txn, fx)
    assert txn.metadata == {"channel": "web"}


def test_update_with_a_currency_without_rate_is_rejected_and_changes_nothing() -> None:
    c, txn = pending_txn()
    before_c, before_t = state(c), txn.snapshot()
    fx = effects("checkout_update", LATER)
    with pytest.raises(Rejected) as exc:
        update_checkout(PROGRAM, update_event(currency="USD"), c, txn, fx)
    assert exc.value.code == "currency_not_supported"
    assert (state(c), txn.snapshot()) == (before_c, before_t)
    assert nothing_recorded(fx)


def test_update_of_a_guest_checkout_reprices_without_moving_points() -> None:
    txn = guest_pending_txn()
    fx = effects("checkout_update", LATER)
    update_checkout(PROGRAM, update_event(total=200, customer=None), None, txn, fx)
    assert txn.points_to_earn == 215
    assert txn.points_pending == 0
    assert fx.ledger == []
    assert hook_types(fx) == ["transaction.updated"]
    assert fx.webhooks[0].customer is None


def test_update_of_a_guest_checkout_cannot_burn() -> None:
    txn = guest_pending_txn()
    before = txn.snapshot()
    fx = effects("checkout_update", LATER)
    with pytest.raises(Rejected) as exc:
        update_checkout(PROGRAM, update_event(customer=None, points_burned=5), None, txn, fx)
    assert exc.value.code == "guest_cannot_burn"
    assert txn.snapshot() == before
    assert nothing_recorded(fx)


# --- Not pending / draft ------------------------------------------------------------------------


def _do_update(c: Customer | None, txn: Transaction, fx: Effects) -> None:
    update_checkout(PROGRAM, update_event(total=500, points_burned=0), c, txn, fx)


ACTIONS: dict[str, Callable[[Customer | None, Transaction, Effects], None]] = {
    "update": _do_update,
    "accept": accept_checkout,
    "reject": reject_checkout,
}


@pytest.mark.parametrize("status", FINAL_STATUSES, ids=str)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_update_accept_reject_of_a_settled_transaction_is_rejected(action: str, status: Status) -> None:
    c, txn = txn_in(status)
    before_c, before_t = state(c), txn.snapshot()
    fx = effects(f"checkout_{action}", LATER + timedelta(days=1))
    with pytest.raises(Rejected) as exc:
        ACTIONS[action](c, txn, fx)
    assert exc.value.code == "not_pending"
    assert status.value in exc.value.message
    assert state(c) == before_c
    assert txn.snapshot() == before_t
    assert nothing_recorded(fx)


def _do_unspend(c: Customer | None, txn: Transaction, fx: Effects) -> None:
    unspend_points(c, txn, fx)


@pytest.mark.parametrize("action", [*ACTIONS, "unspend"])
def test_lifecycle_event_on_a_draft_parks_until_its_checkout(action: str) -> None:
    c = rich_customer()
    txn = Transaction.draft("acme", TID, AT)
    before_c, before_t = state(c), txn.snapshot()
    fx = effects(action, LATER)
    with pytest.raises(Parked) as exc:
        {**ACTIONS, "unspend": _do_unspend}[action](c, txn, fx)
    assert exc.value.code == "awaiting_checkout"
    assert state(c) == before_c
    assert txn.snapshot() == before_t
    assert nothing_recorded(fx)


# --- Accept -------------------------------------------------------------------------------------


def test_accept_turns_pending_points_into_earned_and_records_the_purchase() -> None:
    c, txn = pending_txn()
    assert (c.purchase_count, c.purchase_total, c.purchase_first_date) == (0, Decimal(0), None)
    fx = accept(c, txn)

    assert txn.status is Status.accepted
    assert txn.points_earned == 45
    assert txn.points_pending == 0
    assert txn.points_burned == 10
    assert txn.accepted_at == txn.updated_at == LATER
    assert txn.rejected_at is None
    assert balances(c) == (145, 135, 0, 10)

    assert c.purchase_count == 1
    assert c.purchase_total == Decimal(150)
    assert c.purchase_items == Decimal(3)
    assert c.purchase_first_date == c.purchase_last_date == AT  # the purchase's own time

    assert moves(fx) == [(Movement.pending_earned, 45)]
    assert fx.ledger[0].transaction_id == TID
    assert fx.points["points_earned"] == 45
    assert fx.points["points_pending"] == 0
    assert hook_types(fx) == ["points.earned", "transaction.accepted"]
    assert fx.webhooks[0].data["balances"] == {"score": 145, "spendable": 135, "pending": 0, "spent": 10}
    accepted = fx.webhooks[-1]
    assert accepted.customer == CUSTOMER
    assert accepted.data["transaction"]["status"] == "accepted"
    assert accepted.data["transaction"]["points_earned"] == 45
    assert [(s.from_status, s.to_status) for s in fx.status_changes] == [(Status.pending, Status.accepted)]
    assert fx.status_changes[0].transaction["accepted_at"] == LATER.isoformat().replace("+00:00", "Z")


def test_accept_after_updates_earns_the_last_pending_points() -> None:
    c, txn = pending_txn()
    update(c, txn, update_event(total=200))
    update(c, txn, update_event(total=60, points_burned=25))
    assert txn.points_pending == 60
    fx = accept(c, txn, LATER + timedelta(hours=1))
    assert txn.points_earned == 60
    assert txn.points_pending == 0
    assert balances(c) == (160, 135, 0, 25)
    assert c.purchase_total == Decimal(60)
    assert c.purchase_items == Decimal(1)
    assert moves(fx) == [(Movement.pending_earned, 60)]


def test_accept_of_a_checkout_earning_nothing_still_records_the_purchase() -> None:
    c, txn = pending_txn(points_rewarded=0)
    fx = accept(c, txn)
    assert txn.points_earned == 0
    assert balances(c) == (100, 90, 0, 10)
    assert c.purchase_count == 1
    assert fx.ledger == []
    assert hook_types(fx) == ["transaction.accepted"]


# --- Reject -------------------------------------------------------------------------------------


def test_reject_drops_pending_points_and_keeps_the_burn_spent() -> None:
    c, txn = pending_txn()
    fx = reject(c, txn)

    assert txn.status is Status.rejected
    assert txn.rejected_at == txn.updated_at == LATER
    assert txn.accepted_at is None
    assert txn.points_pending == 0
    assert txn.points_earned == 0
    assert txn.points_burned == 10
    assert txn.points_restored == 0
    assert balances(c) == (100, 90, 0, 10)
    assert (c.purchase_count, c.purchase_total, c.purchase_items) == (0, Decimal(0), Decimal(0))
    assert c.purchase_first_date is None and c.purchase_last_date is None

    assert moves(fx) == [(Movement.pending_dropped, 45)]
    assert fx.points["points_earned"] == 0
    assert hook_types(fx) == ["transaction.rejected"]
    rejected = fx.webhooks[0]
    assert rejected.customer == CUSTOMER
    assert rejected.data["transaction"]["status"] == "rejected"
    assert [(s.from_status, s.to_status) for s in fx.status_changes] == [(Status.pending, Status.rejected)]


def test_reject_after_an_update_drops_the_updated_pending() -> None:
    c, txn = pending_txn()
    update(c, txn, update_event(total=200, points_burned=30))
    fx = reject(c, txn)
    assert moves(fx) == [(Movement.pending_dropped, 215)]
    assert balances(c) == (100, 70, 0, 30)


# --- Unspend ------------------------------------------------------------------------------------


def test_unspend_after_reject_gives_back_the_burn_once() -> None:
    c, txn = pending_txn()
    reject(c, txn)
    at = LATER + timedelta(hours=2)
    fx = unspend(c, txn, at)

    assert balances(c) == (100, 100, 0, 0)
    assert txn.points_restored == 10
    assert txn.points_burned == 10
    assert txn.status is Status.rejected
    assert txn.updated_at == at
    assert moves(fx) == [(Movement.restored, 10)]
    assert fx.points["points_restored"] == 10
    assert hook_types(fx) == ["points.restored", "transaction.updated"]
    assert fx.webhooks[-1].data["transaction"]["points_restored"] == 10
    assert fx.status_changes == []

    before_c, before_t = state(c), txn.snapshot()
    again = effects("point_unspend", at + timedelta(hours=1))
    with pytest.raises(Rejected) as exc:
        unspend_points(c, txn, again)
    assert exc.value.code == "nothing_to_unspend"
    assert (state(c), txn.snapshot()) == (before_c, before_t)
    assert nothing_recorded(again)


def test_unspend_gives_back_the_burn_as_last_updated() -> None:
    c, txn = pending_txn()
    update(c, txn, update_event(total=150, subtotals=[20, 10], points_burned=4))
    reject(c, txn)
    fx = unspend(c, txn)
    assert moves(fx) == [(Movement.restored, 4)]
    assert txn.points_restored == 4
    assert balances(c) == (100, 100, 0, 0)


def test_unspend_of_a_pending_transaction_parks_until_a_reject() -> None:
    c, txn = pending_txn()
    before_c, before_t = state(c), txn.snapshot()
    fx = effects("point_unspend", LATER)
    with pytest.raises(Parked) as exc:
        unspend_points(c, txn, fx)
    assert exc.value.code == "awaiting_reject"
    assert (state(c), txn.snapshot()) == (before_c, before_t)
    assert nothing_recorded(fx)


@pytest.mark.parametrize("status", [Status.accepted, Status.partially_refunded, Status.refunded], ids=str)
def test_unspend_of_a_transaction_that_is_not_rejected_is_refused(status: Status) -> None:
    c, txn = txn_in(status)
    before_c, before_t = state(c), txn.snapshot()
    fx = effects("point_unspend", LATER)
    with pytest.raises(Rejected) as exc:
        unspend_points(c, txn, fx)
    assert exc.value.code == "not_rejected"
    assert (state(c), txn.snapshot()) == (before_c, before_t)
    assert nothing_recorded(fx)


def test_unspend_without_a_burn_has_nothing_to_give_back() -> None:
    c, txn = pending_txn(points_burned=0)
    reject(c, txn)
    before_c = state(c)
    fx = effects("point_unspend", LATER)
    with pytest.raises(Rejected) as exc:
        unspend_points(c, txn, fx)
    assert exc.value.code == "nothing_to_unspend"
    assert state(c) == before_c
    assert txn.points_restored == 0
    assert nothing_recorded(fx)


def test_unspend_of_a_rejected_guest_checkout_has_nothing_to_give_back() -> None:
    txn = guest_pending_txn()
    reject(None, txn)
    fx = effects("point_unspend", LATER)
    with pytest.raises(Rejected) as exc:
        unspend_points(None, txn, fx)
    assert exc.value.code == "nothing_to_unspend"
    assert nothing_recorded(fx)


# --- check_customer -----------------------------------------------------------------------------


def test_check_customer_takes_an_unnamed_customer_as_the_owner() -> None:
    """A guest checkout's lifecycle events name nobody, before or after its claim."""
    _, txn = pending_txn()
    check_customer(None, txn)
    check_customer(txn.customer, txn)


def test_check_customer_refuses_another_customer() -> None:
    _, txn = pending_txn()
    with pytest.raises(Rejected) as exc:
        check_customer("someone-else", txn)
    assert exc.value.code == "customer_mismatch"


def test_check_customer_accepts_the_owner() -> None:
    _, txn = pending_txn()
    check_customer(CUSTOMER, txn)  # no exception


@pytest.mark.parametrize("who", [None, CUSTOMER, "someone-else"])
def test_check_customer_accepts_anyone_on_a_guest_checkout(who: str | None) -> None:
    check_customer(who, guest_pending_txn())  # no exception


# --- expire_pending -----------------------------------------------------------------------------


@pytest.mark.parametrize("at", [DUE, DUE + timedelta(minutes=5)], ids=["at-due", "after-due"])
def test_expiry_of_a_due_pending_checkout_accepts_it(at: datetime) -> None:
    c, txn = pending_txn()
    fx = effects("auto_expire", at)
    expire_pending(PROGRAM, c, txn, fx)
    assert txn.status is Status.accepted
    assert txn.accepted_at == at
    assert txn.points_earned == 45
    assert balances(c) == (145, 135, 0, 10)
    assert c.purchase_count == 1
    assert moves(fx) == [(Movement.pending_earned, 45)]
    assert hook_types(fx) == ["points.earned", "transaction.accepted"]
    assert [(s.from_status, s.to_status) for s in fx.status_changes] == [(Status.pending, Status.accepted)]


def test_expiry_rejects_when_the_program_says_so() -> None:
    c, txn = pending_txn(program=REJECT_ON_EXPIRY)
    fx = effects("auto_expire", DUE)
    expire_pending(REJECT_ON_EXPIRY, c, txn, fx)
    assert txn.status is Status.rejected
    assert txn.rejected_at == DUE
    assert balances(c) == (100, 90, 0, 10)
    assert c.purchase_count == 0
    assert moves(fx) == [(Movement.pending_dropped, 45)]
    assert hook_types(fx) == ["transaction.rejected"]


def test_expiry_under_a_program_without_pending_period_accepts() -> None:
    c, txn = pending_txn()
    no_period = make_program(pending_period=None)
    expire_pending(no_period, c, txn, effects("auto_expire", DUE))
    assert txn.status is Status.accepted


def test_expiry_before_the_due_date_is_refused() -> None:
    c, txn = pending_txn()
    before_c, before_t = state(c), txn.snapshot()
    fx = effects("auto_expire", DUE - timedelta(microseconds=1))
    with pytest.raises(Rejected) as exc:
        expire_pending(PROGRAM, c, txn, fx)
    assert exc.value.code == "not_due"
    assert (state(c), txn.snapshot()) == (before_c, before_t)
    assert nothing_recorded(fx)


@pytest.mark.parametrize("status", FINAL_STATUSES, ids=str)
def test_expiry_of_a_settled_transaction_is_refused(status: Status) -> None:
    c, txn = txn_in(status)
    before_c, before_t = state(c), txn.snapshot()
    fx = effects("auto_expire", DUE + timedelta(days=1))
    with pytest.raises(Rejected) as exc:
        expire_pending(PROGRAM, c, txn, fx)
    assert exc.value.code == "not_due"
    assert (state(c), txn.snapshot()) == (before_c, before_t)
    assert nothing_recorded(fx)


def test_expiry_of_a_draft_is_refused() -> None:
    txn = Transaction.draft("acme", TID, AT)
    with pytest.raises(Rejected) as exc:
        expire_pending(PROGRAM, None, txn, effects("auto_expire", DUE))
    assert exc.value.code == "not_due"
    assert txn.status is Status.draft


# --- Guest pending checkouts --------------------------------------------------------------------


def test_accept_of_a_guest_checkout_moves_no_points() -> None:
    txn = guest_pending_txn()
    fx = accept(None, txn)
    assert txn.status is Status.accepted
    assert txn.accepted_at == LATER
    assert (txn.points_earned, txn.points_pending) == (0, 0)
    assert txn.points_to_earn == 45  # held for a claim
    assert fx.ledger == []
    assert all(v == 0 for v in fx.points.values())
    assert hook_types(fx) == ["transaction.accepted"]
    assert fx.webhooks[0].customer is None
    assert [(s.from_status, s.to_status) for s in fx.status_changes] == [(Status.pending, Status.accepted)]


def test_reject_of_a_guest_checkout_moves_no_points() -> None:
    txn = guest_pending_txn()
    fx = reject(None, txn)
    assert txn.status is Status.rejected
    assert txn.rejected_at == LATER
    assert (txn.points_earned, txn.points_pending) == (0, 0)
    assert fx.ledger == []
    assert hook_types(fx) == ["transaction.rejected"]
    assert [(s.from_status, s.to_status) for s in fx.status_changes] == [(Status.pending, Status.rejected)]


# --- Ledger invariant ---------------------------------------------------------------------------


def _assert_ledger_matches(c: Customer, ledger: list[LedgerEntry]) -> None:
    assert all(e.customer_id == CUSTOMER and e.points >= 0 for e in ledger)
    assert c.score == sum(e.score for e in ledger)
    assert c.spendable == sum(e.spendable for e in ledger)
    assert c.pending == sum(e.pending for e in ledger)
    assert c.spent == sum(e.spent for e in ledger)


AMOUNTS = st.decimals(min_value=0, max_value=1000, places=2, allow_nan=False, allow_infinity=False)


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    initial=st.integers(min_value=0, max_value=500),
    first_burn=st.integers(min_value=0, max_value=500),
    steps=st.integers(min_value=0, max_value=6),
    finish=st.sampled_from(["accept", "reject", "reject+unspend"]),
    data=st.data(),
)
def test_updates_then_accept_or_reject_keep_the_ledger_invariant(
    initial: int, first_burn: int, steps: int, finish: str, data: st.DataObject
) -> None:
    c = Customer(program="acme", customer_id=CUSTOMER)
    start = effects("seed", AT - timedelta(days=1), key="seed")
    start.move(c, Movement.earned, initial, "earlier")
    all_effects = [start]

    fx = effects()
    txn = register_checkout(PROGRAM, seed_earning_45(points_burned=min(first_burn, initial)), c, None, fx)
    all_effects.append(fx)
    at = AT
    for n in range(steps):
        at += timedelta(hours=1)
        subtotals = data.draw(st.lists(AMOUNTS, min_size=0, max_size=3), label="subtotals")
        total = data.draw(AMOUNTS, label="total")
        limit = txn.points_burned + c.spendable
        burn = data.draw(st.none() | st.integers(min_value=0, max_value=limit + 50), label="burn")
        items = [{"product_id": f"p{i}", "subtotal": s} for i, s in enumerate(subtotals)]
        body: dict[str, Any] = {"transaction_id": TID, "total": total, "items": items}
        if burn is not None:
            body["points_burned"] = burn
        event = to_checkout_update(
            CheckoutUpdateEvent.model_validate(
                {"action": "checkout_update", "customer": CUSTOMER, "data": body}
            )
        )
        ufx = effects("checkout_update", at, key=f"u{n}")
        if burn is not None and burn > limit:
            before_c, before_t = state(c), txn.snapshot()
            with pytest.raises(Rejected) as exc:
                update_checkout(PROGRAM, event, c, txn, ufx)
            assert exc.value.code == "insufficient_points"
            assert (state(c), txn.snapshot()) == (before_c, before_t)
            assert nothing_recorded(ufx)
            continue
        update_checkout(PROGRAM, event, c, txn, ufx)
        all_effects.append(ufx)
        assert c.pending == txn.points_pending == txn.points_to_earn
        assert c.spent == txn.points_burned
        assert c.spendable == initial - txn.points_burned
        if txn.items:
            assert sum(i.points_burned for i in txn.items) == txn.points_burned
        _assert_ledger_matches(c, [e for f in all_effects for e in f.ledger])

    to_earn, burned = txn.points_to_earn, txn.points_burned
    at += timedelta(hours=1)
    if finish == "accept":
        all_effects.append(accept(c, txn, at))
        assert txn.points_earned == to_earn
        assert (c.score - initial, c.pending, c.spent) == (to_earn, 0, burned)
        assert c.spendable == initial - burned + to_earn
    else:
        all_effects.append(reject(c, txn, at))
        assert (c.score - initial, c.pending, c.spent) == (0, 0, burned)
        assert c.spendable == initial - burned
        if finish == "reject+unspend" and burned:
            all_effects.append(unspend(c, txn, at + timedelta(hours=1)))
            assert (c.score, c.spendable, c.pending, c.spent) == (initial, initial, 0, 0)
            assert txn.points_restored == burned
    assert txn.points_pending == 0
    _assert_ledger_matches(c, [e for f in all_effects for e in f.ledger])
