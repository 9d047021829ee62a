"""Refund rules: refund, partial_refund, refund_item and proportional_share. The cumulative rule
(what has been revoked or restored after a refund is ``floor(whole * refunded / total)``),
status changes, webhooks, coupons and offers, refusals, and the properties that any sequence
of refunds covering a transaction gives back exactly what its purchase gave."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.domain.allocation import proportional_share
from services.domain.checkout import claim_guest_checkout, register_checkout
from services.domain.customer import Customer, LedgerEntry, Movement
from services.domain.effects import Effects, Parked, Rejected
from services.domain.lifecycle import accept_checkout, reject_checkout
from services.domain.program import Program, Rounding
from services.domain.purchase import Checkout
from services.domain.refunds import (
    partial_refund,
    refund,
    refund_item,
    unredeem_coupon,
    unredeem_offers,
)
from services.domain.transaction import Status, Transaction
from tests.unit.builders import (
    AT,
    CUSTOMER,
    LATER,
    PENDING_SECONDS,
    TID,
    balances,
    checkout,
    effects,
    guest_event,
    make_program,
    rich_customer,
    seed_earning_45,
)

CENT = Decimal("0.01")


PROGRAM = make_program()  # no pending period: checkouts are accepted at once
PENDING_PROGRAM = make_program(pending_period={"seconds": PENDING_SECONDS})


def purchases(c: Customer) -> tuple[Decimal, int, Decimal]:
    return (c.purchase_total, c.purchase_count, c.purchase_items)


def state(c: Customer) -> tuple[Any, ...]:
    return (*balances(c), *purchases(c), c.purchase_first_date, c.purchase_last_date)


def hook_types(fx: Effects) -> list[str]:
    return [w.type for w in fx.webhooks]


def moves(fx: Effects) -> list[tuple[Movement, int]]:
    return [(e.movement, e.points) for e in fx.ledger]


def transitions(fx: Effects) -> list[tuple[Status | None, Status]]:
    return [(s.from_status, s.to_status) for s in fx.status_changes]


def nothing_recorded(fx: Effects) -> bool:
    return fx.ledger == [] and fx.webhooks == [] and fx.status_changes == []


def points_of(fx: Effects) -> dict[str, int]:
    return dict(fx.points)


def only_refund_points(revoked: int, restored: int) -> dict[str, int]:
    return {
        "points_earned": 0,
        "points_pending": 0,
        "points_burned": 0,
        "points_revoked": revoked,
        "points_restored": restored,
    }


def bought(
    c: Customer | None = None, program: Program = PROGRAM, **data: Any
) -> tuple[Customer, Transaction]:
    """The seed checkout (total 150; items 001 x2 = 95 and 002 x1 = 50; 45 points earned,
    10 burned) accepted at once for a customer who had 100: balances (145, 135, 0, 10)."""
    c = rich_customer() if c is None else c
    txn = register_checkout(program, seed_earning_45(**data), c, None, effects())
    assert txn.status is Status.accepted
    return c, txn


def do_refund(
    c: Customer | None, txn: Transaction, offers: list[str] | None = None, at: datetime = LATER
) -> Effects:
    fx = effects("refund", at)
    refund(c, txn, offers or [], fx)
    return fx


def do_partial(
    c: Customer | None, txn: Transaction, amount: Any, offers: list[str] | None = None, at: datetime = LATER
) -> Effects:
    fx = effects("partial_refund", at)
    partial_refund(c, txn, Decimal(amount), offers or [], fx)
    return fx


def do_item(
    c: Customer | None,
    txn: Transaction,
    product_id: str,
    quantity: Any = 1,
    subtotal: Any = None,
    offers: list[str] | None = None,
    at: datetime = LATER,
) -> Effects:
    fx = effects("refund_item", at)
    explicit = None if subtotal is None else Decimal(subtotal)
    refund_item(c, txn, product_id, Decimal(quantity), explicit, offers or [], fx)
    return fx


Call = Callable[[Customer | None, Transaction, Effects], None]


def refused(call: Call, c: Customer | None, txn: Transaction, kind: type[Exception] = Rejected) -> str:
    """Runs a refund expected to be refused; checks it changed nothing and returns its code."""
    before_c = None if c is None else state(c)
    before_t = txn.snapshot()
    fx = effects("refund", LATER + timedelta(hours=5))
    with pytest.raises(kind) as exc:
        call(c, txn, fx)
    assert (None if c is None else state(c)) == before_c
    assert txn.snapshot() == before_t
    assert nothing_recorded(fx)
    code: str = exc.value.code  # type: ignore[attr-defined]
    return code


def whole_refund(offers: list[str] | None = None) -> Call:
    return lambda c, txn, fx: refund(c, txn, offers or [], fx)


def partial(amount: Any, offers: list[str] | None = None) -> Call:
    return lambda c, txn, fx: partial_refund(c, txn, Decimal(amount), offers or [], fx)


def item(product_id: str, quantity: Any = 1, subtotal: Any = None, offers: list[str] | None = None) -> Call:
    explicit = None if subtotal is None else Decimal(subtotal)
    return lambda c, txn, fx: refund_item(c, txn, product_id, Decimal(quantity), explicit, offers or [], fx)


def floor_share(whole: int, part: Decimal, total: Decimal) -> int:
    """The cumulative rule, computed exactly with fractions (the oracle)."""
    if part >= total:
        return whole
    return int(Fraction(whole) * Fraction(part) // Fraction(total))


def assert_ledger_matches(c: Customer, start: tuple[int, int, int, int], ledger: list[LedgerEntry]) -> None:
    """Every balance moved by exactly the sum of its ledger deltas."""
    assert all(e.customer_id == CUSTOMER and e.points > 0 for e in ledger)
    assert c.score - start[0] == sum(e.score for e in ledger)
    assert c.spendable - start[1] == sum(e.spendable for e in ledger)
    assert c.pending - start[2] == sum(e.pending for e in ledger)
    assert c.spent - start[3] == sum(e.spent for e in ledger)


# --- Full refund --------------------------------------------------------------------------------


def test_full_refund_gives_back_everything_the_purchase_gave() -> None:
    c, txn = bought()
    assert balances(c) == (145, 135, 0, 10)
    assert purchases(c) == (Decimal(150), 1, Decimal(3))
    fx = do_refund(c, txn)

    assert txn.status is Status.refunded
    assert txn.refunded == txn.total == Decimal(150)
    assert (txn.points_earned, txn.points_revoked) == (45, 45)
    assert (txn.points_burned, txn.points_restored) == (10, 10)
    assert [i.refunded_quantity for i in txn.items] == [Decimal(2), Decimal(1)]
    assert txn.updated_at == LATER
    assert txn.accepted_at == AT  # untouched
    assert balances(c) == (100, 100, 0, 0)
    assert purchases(c) == (Decimal(0), 0, Decimal(0))

    assert moves(fx) == [(Movement.revoked, 45), (Movement.restored, 10)]
    assert all(e.transaction_id == TID and e.at == LATER and e.event_key == "key-1" for e in fx.ledger)
    assert points_of(fx) == only_refund_points(45, 10)
    assert hook_types(fx) == ["points.revoked", "points.restored", "transaction.refunded"]
    revoked = fx.webhooks[0]
    assert revoked.customer == CUSTOMER
    assert revoked.data == {
        "customer": CUSTOMER,
        "transaction_id": TID,
        "points": 45,
        "balances": {"score": 100, "spendable": 90, "pending": 0, "spent": 10},
        "negative_spendable": False,
    }
    assert fx.webhooks[1].data["points"] == 10
    assert fx.webhooks[1].data["balances"] == {"score": 100, "spendable": 100, "pending": 0, "spent": 0}
    refunded = fx.webhooks[-1]
    assert refunded.customer == CUSTOMER
    assert refunded.data["transaction"]["status"] == "refunded"
    assert refunded.data["transaction"]["points_revoked"] == 45
    assert transitions(fx) == [(Status.accepted, Status.refunded)]
    assert fx.status_changes[0].transaction["refunded"] == "150.00"


def test_full_refund_of_a_pending_then_accepted_checkout() -> None:
    c = rich_customer()
    txn = register_checkout(PENDING_PROGRAM, seed_earning_45(), c, None, effects())
    assert balances(c) == (100, 90, 45, 10)
    accept_checkout(c, txn, effects("checkout_accept", AT + timedelta(hours=1)))
    assert balances(c) == (145, 135, 0, 10)
    fx = do_refund(c, txn)
    assert balances(c) == (100, 100, 0, 0)
    assert purchases(c) == (Decimal(0), 0, Decimal(0))
    assert transitions(fx) == [(Status.accepted, Status.refunded)]


def test_full_refund_in_a_foreign_currency_converts_the_purchase_total() -> None:
    p = make_program(exchange_rates={"USD": "0.5"})
    c, txn = bought(program=p, currency="USD")
    assert txn.rate == Decimal("0.5")
    assert c.purchase_total == Decimal(75)
    do_partial(c, txn, 30)
    assert c.purchase_total == Decimal(60)
    do_refund(c, txn)
    assert purchases(c) == (Decimal(0), 0, Decimal(0))


def test_refund_without_burn_restores_nothing() -> None:
    c, txn = bought(points_burned=0)
    fx = do_refund(c, txn)
    assert moves(fx) == [(Movement.revoked, 45)]
    assert points_of(fx) == only_refund_points(45, 0)
    assert hook_types(fx) == ["points.revoked", "transaction.refunded"]
    assert txn.points_restored == 0
    assert balances(c) == (100, 100, 0, 0)


def test_refund_of_a_checkout_earning_nothing_still_drops_the_purchase() -> None:
    c, txn = bought(points_rewarded=0, points_burned=0)
    fx = do_refund(c, txn)
    assert fx.ledger == []
    assert hook_types(fx) == ["transaction.refunded"]
    assert purchases(c) == (Decimal(0), 0, Decimal(0))


def test_refund_keeps_other_purchases() -> None:
    c, first = bought()
    second = register_checkout(
        PROGRAM, seed_earning_45(transaction_id="t-2", total=40, points_burned=0), c, None, effects()
    )
    assert purchases(c) == (Decimal(190), 2, Decimal(6))
    do_refund(c, first)
    assert purchases(c) == (Decimal(40), 1, Decimal(3))
    assert second.status is Status.accepted
    assert c.score == 100 + second.points_earned


# --- Partial refunds and the cumulative rule ----------------------------------------------------


def test_partial_refunds_follow_the_cumulative_rule() -> None:
    c, txn = bought()

    first = do_partial(c, txn, 50)  # R = 50: floor(45 * 50/150) = 15, floor(10 * 50/150) = 3
    assert txn.status is Status.partially_refunded
    assert txn.refunded == Decimal(50)
    assert (txn.points_revoked, txn.points_restored) == (15, 3)
    assert moves(first) == [(Movement.revoked, 15), (Movement.restored, 3)]
    assert points_of(first) == only_refund_points(15, 3)
    assert balances(c) == (130, 123, 0, 7)
    assert purchases(c) == (Decimal(100), 1, Decimal(3))  # count and items wait for the full refund
    assert transitions(first) == [(Status.accepted, Status.partially_refunded)]
    assert hook_types(first) == ["points.revoked", "points.restored", "transaction.partially_refunded"]
    assert first.webhooks[-1].data["transaction"]["status"] == "partially_refunded"
    assert first.status_changes[0].transaction["refunded"] == "50.00"
    assert [i.refunded_quantity for i in txn.items] == [Decimal(0), Decimal(0)]

    at = LATER + timedelta(hours=1)
    second = do_partial(c, txn, 25, at=at)  # R = 75: 22 (+7) and 5 (+2)
    assert txn.status is Status.partially_refunded
    assert txn.refunded == Decimal(75)
    assert (txn.points_revoked, txn.points_restored) == (22, 5)
    assert moves(second) == [(Movement.revoked, 7), (Movement.restored, 2)]
    assert points_of(second) == only_refund_points(7, 2)
    assert second.status_changes == []  # no new status ...
    # ... but the transaction is announced again
    assert hook_types(second) == ["points.revoked", "points.restored", "transaction.partially_refunded"]
    assert second.webhooks[-1].data["transaction"]["refunded"] == "75.00"
    assert txn.updated_at == at

    last = do_refund(c, txn, at=at + timedelta(hours=1))  # the rest: 45 - 22 and 10 - 5
    assert txn.status is Status.refunded
    assert txn.refunded == Decimal(150)
    assert moves(last) == [(Movement.revoked, 23), (Movement.restored, 5)]
    assert points_of(last) == only_refund_points(23, 5)
    assert transitions(last) == [(Status.partially_refunded, Status.refunded)]
    assert hook_types(last) == ["points.revoked", "points.restored", "transaction.refunded"]
    assert balances(c) == (100, 100, 0, 0)
    assert purchases(c) == (Decimal(0), 0, Decimal(0))
    assert [i.refunded_quantity for i in txn.items] == [Decimal(2), Decimal(1)]


def test_tiny_partial_refunds_move_nothing_until_a_point_is_due() -> None:
    c, txn = bought()
    fx = do_partial(c, txn, "1.00")  # floor(45/150) = 0, floor(10/150) = 0
    assert fx.ledger == []
    assert points_of(fx) == only_refund_points(0, 0)
    assert hook_types(fx) == ["transaction.partially_refunded"]
    assert transitions(fx) == [(Status.accepted, Status.partially_refunded)]
    assert c.purchase_total == Decimal(149)
    fx = do_partial(c, txn, "2.50")  # R = 3.5: floor(1.05) = 1, floor(0.23) = 0
    assert moves(fx) == [(Movement.revoked, 1)]
    assert txn.points_revoked == 1


def test_partial_refund_of_exactly_what_is_left_completes_the_refund() -> None:
    c, txn = bought(coupons=["c1"])
    do_partial(c, txn, 100)
    fx = do_partial(c, txn, 50, at=LATER + timedelta(hours=1))
    assert txn.status is Status.refunded
    assert transitions(fx) == [(Status.partially_refunded, Status.refunded)]
    assert hook_types(fx)[-2:] == ["coupon.unredeemed", "transaction.refunded"]
    assert balances(c) == (100, 100, 0, 0)
    assert purchases(c) == (Decimal(0), 0, Decimal(0))


def test_single_partial_refund_of_the_whole_total_is_a_full_refund() -> None:
    c, txn = bought()
    fx = do_partial(c, txn, 150)
    assert txn.status is Status.refunded
    assert transitions(fx) == [(Status.accepted, Status.refunded)]
    assert hook_types(fx) == ["points.revoked", "points.restored", "transaction.refunded"]
    assert purchases(c) == (Decimal(0), 0, Decimal(0))


# --- Item refunds -------------------------------------------------------------------------------


def test_item_refund_refunds_the_units_pro_rata() -> None:
    c, txn = bought()
    fx = do_item(c, txn, "001", 1)  # 95 * 1/2 = 47.50: floor(14.25) = 14, floor(3.17) = 3
    assert txn.status is Status.partially_refunded
    assert txn.refunded == Decimal("47.50")
    assert [i.refunded_quantity for i in txn.items] == [Decimal(1), Decimal(0)]
    assert moves(fx) == [(Movement.revoked, 14), (Movement.restored, 3)]
    assert points_of(fx) == only_refund_points(14, 3)
    assert purchases(c) == (Decimal("102.50"), 1, Decimal(2))  # the unit is back, the purchase counts
    assert transitions(fx) == [(Status.accepted, Status.partially_refunded)]
    assert hook_types(fx) == ["points.revoked", "points.restored", "transaction.partially_refunded"]


def test_item_refund_with_an_explicit_subtotal_refunds_that_amount() -> None:
    c, txn = bought()
    fx = do_item(c, txn, "001", 1, subtotal=60)
    assert txn.refunded == Decimal(60)
    assert moves(fx) == [(Movement.revoked, 18), (Movement.restored, 4)]
    assert c.purchase_total == Decimal(90)


def test_item_refund_rounds_pro_rata_to_cents_and_the_item_adds_up_to_its_subtotal() -> None:
    c, txn = bought(
        total=10, points_burned=0, items=[{"product_id": "a", "subtotal": 10, "quantity": 3}], coupons=[]
    )
    do_item(c, txn, "a", 1)
    assert txn.refunded == Decimal("3.33")
    do_item(c, txn, "a", 1)
    assert txn.refunded == Decimal("6.67")  # 6.666... rounded, not 3.33 twice
    do_item(c, txn, "a", 1)
    assert txn.refunded == Decimal(10)
    assert txn.status is Status.refunded


def test_item_refunds_covering_every_item_complete_the_refund_with_what_is_left() -> None:
    """The seed's items sum to 145 of its 150 total: the last units take the 5 left too."""
    c, txn = bought(coupons=["c1", "c2"])
    first = do_item(c, txn, "002")
    assert txn.refunded == Decimal(50)
    assert txn.coupons_unredeemed == []
    assert "coupon.unredeemed" not in hook_types(first)
    second = do_item(c, txn, "001", 2, at=LATER + timedelta(hours=1))
    assert txn.refunded == Decimal(150)
    assert txn.status is Status.refunded
    assert (txn.points_revoked, txn.points_restored) == (45, 10)
    assert balances(c) == (100, 100, 0, 0)
    assert (c.purchase_total, c.purchase_count) == (Decimal(0), 0)
    assert transitions(second) == [(Status.partially_refunded, Status.refunded)]
    assert txn.coupons_unredeemed == ["c1", "c2"]
    assert hook_types(second)[-3:] == ["coupon.unredeemed", "coupon.unredeemed", "transaction.refunded"]


def test_last_units_ignore_an_explicit_subtotal_and_take_what_is_left() -> None:
    c, txn = bought()
    do_item(c, txn, "001", 2)
    do_item(c, txn, "002", 1, subtotal=1)
    assert txn.refunded == txn.total
    assert txn.status is Status.refunded


def test_item_refund_of_a_product_on_two_lines_takes_the_first_line_with_units_left() -> None:
    c, txn = bought(
        total=30,
        points_burned=0,
        items=[{"product_id": "x", "subtotal": 10}, {"product_id": "x", "subtotal": 20}],
    )
    do_item(c, txn, "x")
    assert [i.refunded_quantity for i in txn.items] == [Decimal(1), Decimal(0)]
    assert txn.refunded == Decimal(10)
    do_item(c, txn, "x")
    assert txn.status is Status.refunded
    assert txn.refunded == Decimal(30)
    assert refused(item("x"), c, txn) == "already_refunded"


# --- Mixed sequences ----------------------------------------------------------------------------


def test_partial_then_item_then_rest_sums_exactly() -> None:
    c, txn = bought(coupons=["c1"])
    start = balances(c)
    a = do_partial(c, txn, "10.01")  # R = 10.01: floor(3.003) = 3, floor(0.667) = 0
    b = do_item(c, txn, "001", 1, at=LATER + timedelta(hours=1))  # R = 57.51: 17 (+14), 3 (+3)
    rest = do_refund(c, txn, at=LATER + timedelta(hours=2))
    assert [points_of(fx)["points_revoked"] for fx in (a, b, rest)] == [3, 14, 28]
    assert [points_of(fx)["points_restored"] for fx in (a, b, rest)] == [0, 3, 7]
    assert txn.refunded == Decimal(150)
    assert (txn.points_revoked, txn.points_restored) == (45, 10)
    assert balances(c) == (100, 100, 0, 0)
    assert (c.purchase_total, c.purchase_count) == (Decimal(0), 0)
    assert [transitions(fx) for fx in (a, b, rest)] == [
        [(Status.accepted, Status.partially_refunded)],
        [],
        [(Status.partially_refunded, Status.refunded)],
    ]
    assert [h for fx in (a, b) for h in hook_types(fx)].count("coupon.unredeemed") == 0
    assert hook_types(rest).count("coupon.unredeemed") == 1
    assert_ledger_matches(c, start, [e for fx in (a, b, rest) for e in fx.ledger])


def test_item_refunds_take_their_units_out_of_purchase_items_as_they_go() -> None:
    c, txn = bought()
    assert c.purchase_items == Decimal(3)
    do_item(c, txn, "001", 1)
    assert purchases(c) == (Decimal("102.50"), 1, Decimal(2))
    do_item(c, txn, "002", 1)
    assert purchases(c) == (Decimal("52.50"), 1, Decimal(1))
    do_item(c, txn, "001", 1)
    assert txn.status is Status.refunded
    assert purchases(c) == (Decimal(0), 0, Decimal(0))


@pytest.mark.parametrize("path", ["item-then-refund", "partial-item-refund", "fractional-item-then-partial"])
def test_item_and_other_refunds_give_back_every_purchased_item_once(path: str) -> None:
    c, txn = bought()
    if path == "item-then-refund":
        do_item(c, txn, "001", 2)
        assert c.purchase_items == Decimal(1)
        do_refund(c, txn)
    elif path == "partial-item-refund":
        do_partial(c, txn, 10)
        assert c.purchase_items == Decimal(3)  # an amount names no units
        do_item(c, txn, "002", 1)
        assert c.purchase_items == Decimal(2)
        do_refund(c, txn)
    else:
        do_item(c, txn, "001", "0.5")
        assert c.purchase_items == Decimal("2.5")
        do_partial(c, txn, txn.total - txn.refunded)
    assert txn.status is Status.refunded
    assert [i.refunded_quantity for i in txn.items] == [Decimal(2), Decimal(1)]
    assert purchases(c) == (Decimal(0), 0, Decimal(0))


# --- Refusals -----------------------------------------------------------------------------------


def test_partial_refund_beyond_what_is_left_is_rejected_and_changes_nothing() -> None:
    c, txn = bought()
    assert refused(partial("150.01"), c, txn) == "over_refund"
    do_partial(c, txn, 100)
    assert refused(partial("50.000001"), c, txn) == "over_refund"
    assert txn.status is Status.partially_refunded


def test_item_refund_beyond_the_units_left_is_rejected() -> None:
    c, txn = bought()
    assert refused(item("001", 3), c, txn) == "over_refund"
    do_item(c, txn, "001", "1.5")
    assert refused(item("001", "0.6"), c, txn) == "over_refund"
    do_item(c, txn, "001", "0.5")
    # every unit of 001 is back: the first line is the one left to refuse
    assert refused(item("001", 1), c, txn) == "over_refund"


def test_item_refund_with_a_subtotal_beyond_what_is_left_is_rejected() -> None:
    c, txn = bought()
    do_partial(c, txn, 140)
    assert refused(item("001", 1, subtotal=11), c, txn) == "over_refund"
    # pro rata (47.50) is beyond the 10 left as well
    assert refused(item("001", 1), c, txn) == "over_refund"
    do_item(c, txn, "001", 1, subtotal=10)
    assert txn.status is Status.refunded


def test_item_refund_of_an_unknown_product_is_rejected() -> None:
    c, txn = bought()
    assert refused(item("nope"), c, txn) == "unknown_item"


def test_refund_of_a_pending_transaction_parks_until_an_accept() -> None:
    c = rich_customer()
    txn = register_checkout(PENDING_PROGRAM, seed_earning_45(), c, None, effects())
    for call in (whole_refund(), partial(10), item("001")):
        assert refused(call, c, txn, Parked) == "awaiting_accept"


def test_refund_of_a_rejected_transaction_is_rejected() -> None:
    c = rich_customer()
    txn = register_checkout(PENDING_PROGRAM, seed_earning_45(), c, None, effects())
    reject_checkout(c, txn, effects("checkout_reject", LATER))
    for call in (whole_refund(), partial(10), item("001")):
        assert refused(call, c, txn) == "transaction_rejected"


def test_refund_of_a_refunded_transaction_is_rejected() -> None:
    c, txn = bought(offers=["o1"])
    do_refund(c, txn)
    for call in (whole_refund(), partial(10), item("001"), whole_refund(["o1"])):
        assert refused(call, c, txn) == "already_refunded"


def test_refund_of_a_draft_parks_until_its_checkout() -> None:
    c = rich_customer()
    txn = Transaction.draft("acme", TID, AT)
    for call in (whole_refund(), partial(10), item("001")):
        assert refused(call, c, txn, Parked) == "awaiting_checkout"


def test_status_is_checked_before_the_amount_and_the_item() -> None:
    c = rich_customer()
    txn = register_checkout(PENDING_PROGRAM, seed_earning_45(), c, None, effects())
    assert refused(partial(1000), c, txn, Parked) == "awaiting_accept"
    assert refused(item("nope"), c, txn, Parked) == "awaiting_accept"


# --- Negative spendable -------------------------------------------------------------------------


def test_refund_of_spent_points_reports_negative_spendable() -> None:
    c = Customer(program="acme", customer_id=CUSTOMER)
    _, earned = bought(c, points_burned=0)
    register_checkout(
        PROGRAM,
        seed_earning_45(transaction_id="t-2", total=1, points_burned=40, items=[]),
        c,
        None,
        effects(),
    )
    # t-2 is transaction level here (no items): 1 point for the 1 EUR it costs
    assert balances(c) == (46, 6, 0, 40)

    fx = do_refund(c, earned)
    assert balances(c) == (1, -39, 0, 40)
    assert c.spendable < 0
    assert hook_types(fx) == ["points.revoked", "transaction.refunded"]
    revoked = fx.webhooks[0].data
    assert revoked["points"] == 45
    assert revoked["negative_spendable"] is True
    assert revoked["balances"] == {"score": 1, "spendable": -39, "pending": 0, "spent": 40}


def test_partial_refund_may_also_drive_spendable_negative() -> None:
    c = Customer(program="acme", customer_id=CUSTOMER)
    _, txn = bought(c, points_burned=0)
    c.spendable = 0  # spent elsewhere (set directly: only this transaction matters here)
    fx = do_partial(c, txn, 75)
    assert c.spendable == -22
    assert fx.webhooks[0].data["negative_spendable"] is True


# --- Coupons and offers -------------------------------------------------------------------------


def test_coupons_are_unredeemed_by_a_full_refund() -> None:
    c, txn = bought(coupons=["c1", "c2"])
    fx = do_refund(c, txn)
    assert txn.coupons_unredeemed == ["c1", "c2"]
    assert hook_types(fx) == [
        "points.revoked",
        "points.restored",
        "coupon.unredeemed",
        "coupon.unredeemed",
        "transaction.refunded",
    ]
    assert [w.data for w in fx.webhooks if w.type == "coupon.unredeemed"] == [
        {"coupon": "c1", "transaction_id": TID, "customer": CUSTOMER},
        {"coupon": "c2", "transaction_id": TID, "customer": CUSTOMER},
    ]
    assert all(w.customer == CUSTOMER for w in fx.webhooks)
    assert fx.webhooks[-1].data["transaction"]["coupons_unredeemed"] == ["c1", "c2"]


def test_coupons_stay_redeemed_on_a_partial_refund() -> None:
    c, txn = bought(coupons=["c1"])
    fx = do_partial(c, txn, 149)
    assert txn.coupons_unredeemed == []
    assert "coupon.unredeemed" not in hook_types(fx)
    fx = do_item(c, txn, "002", 1, subtotal=0)
    assert txn.coupons_unredeemed == []
    assert "coupon.unredeemed" not in hook_types(fx)
    fx = do_partial(c, txn, 1)
    assert txn.coupons_unredeemed == ["c1"]
    assert hook_types(fx).count("coupon.unredeemed") == 1


def test_offers_listed_in_a_refund_are_unredeemed() -> None:
    c, txn = bought(offers=["o1", "o2", "o3"])
    fx = do_partial(c, txn, 10, offers=["o2"])
    assert txn.offers_unredeemed == ["o2"]
    assert hook_types(fx) == ["points.revoked", "offer.unredeemed", "transaction.partially_refunded"]
    assert fx.webhooks[1].data == {"offer": "o2", "transaction_id": TID, "customer": CUSTOMER}
    assert fx.webhooks[1].customer == CUSTOMER

    fx = do_item(c, txn, "001", 1, offers=["o3"])
    assert txn.offers_unredeemed == ["o2", "o3"]
    assert hook_types(fx).count("offer.unredeemed") == 1

    fx = do_refund(c, txn)  # offers not listed stay redeemed
    assert txn.offers_unredeemed == ["o2", "o3"]
    assert "offer.unredeemed" not in hook_types(fx)


def test_offers_unredeemed_by_a_full_refund_come_before_coupons() -> None:
    c, txn = bought(offers=["o1"], coupons=["c1"])
    fx = do_refund(c, txn, offers=["o1"])
    assert txn.offers_unredeemed == ["o1"]
    assert txn.coupons_unredeemed == ["c1"]
    assert hook_types(fx)[-3:] == ["offer.unredeemed", "coupon.unredeemed", "transaction.refunded"]


@pytest.mark.parametrize("call", ["refund", "partial", "item"])
def test_an_offer_not_redeemed_with_the_transaction_is_rejected(call: str) -> None:
    c, txn = bought(offers=["o1"])
    make = {
        "refund": whole_refund,
        "partial": lambda o: partial(10, o),
        "item": lambda o: item("001", 1, None, o),
    }
    assert refused(make[call](["o1", "other"]), c, txn) == "unknown_offer"


def test_an_offer_unredeemed_already_is_rejected() -> None:
    c, txn = bought(offers=["o1"])
    do_partial(c, txn, 10, offers=["o1"])
    assert refused(partial(10, ["o1"]), c, txn) == "unknown_offer"
    assert refused(whole_refund(["o1"]), c, txn) == "unknown_offer"


def test_an_offer_listed_twice_in_one_refund_is_rejected() -> None:
    c, txn = bought(offers=["o1"])
    fx = effects("partial_refund", LATER)
    with pytest.raises(Rejected) as exc:
        partial_refund(c, txn, Decimal(10), ["o1", "o1"], fx)
    assert exc.value.code == "duplicate_offer"
    assert txn.offers_unredeemed == [] and hook_types(fx) == []


# --- Guests -------------------------------------------------------------------------------------


def test_refund_of_an_unclaimed_guest_checkout_changes_only_the_transaction() -> None:
    txn = register_checkout(PROGRAM, guest_event(coupons=["c1"]), None, None, effects())
    assert txn.status is Status.accepted
    assert txn.customer is None and txn.points_earned == 0

    first = do_partial(None, txn, 50)
    assert txn.status is Status.partially_refunded
    assert txn.refunded == Decimal(50)
    assert first.ledger == []
    assert points_of(first) == only_refund_points(0, 0)
    assert hook_types(first) == ["transaction.partially_refunded"]

    fx = do_refund(None, txn)
    assert txn.status is Status.refunded
    assert txn.refunded == Decimal(150)
    assert (txn.points_revoked, txn.points_restored) == (0, 0)
    assert fx.ledger == []
    assert points_of(fx) == only_refund_points(0, 0)
    assert hook_types(fx) == ["coupon.unredeemed", "transaction.refunded"]
    assert all(w.customer is None for w in fx.webhooks)
    assert fx.webhooks[0].data["customer"] is None
    assert transitions(fx) == [(Status.partially_refunded, Status.refunded)]


def test_refund_of_a_claimed_guest_checkout_gives_back_what_the_claim_gave() -> None:
    c = rich_customer()
    txn = register_checkout(PROGRAM, guest_event(), None, None, effects())
    claim_guest_checkout(c, txn, effects("checkout_claim", LATER))
    assert balances(c) == (145, 145, 0, 0)
    fx = do_refund(c, txn, at=LATER + timedelta(hours=1))
    assert moves(fx) == [(Movement.revoked, 45)]
    assert balances(c) == (100, 100, 0, 0)
    assert purchases(c) == (Decimal(0), 0, Decimal(0))


# --- Zero total ---------------------------------------------------------------------------------


def _free_checkout(c: Customer) -> Transaction:
    """A free purchase (total 0) that still earns a fixed campaign bonus and burns points."""
    p = make_program(earn={"level": "item", "campaigns": [{"id": "welcome", "points": 7}]})
    event = checkout(
        {
            "action": "checkout",
            "customer": CUSTOMER,
            "data": {
                "transaction_id": TID,
                "total": 0,
                "points_burned": 5,
                "items": [{"product_id": "gift", "subtotal": 0}],
            },
        }
    )
    txn = register_checkout(p, event, c, None, effects())
    assert (txn.points_earned, txn.points_burned) == (7, 5)
    return txn


def test_refund_of_a_free_checkout_completes_and_drops_the_purchase() -> None:
    c = rich_customer()
    txn = _free_checkout(c)
    fx = do_refund(c, txn)
    assert txn.status is Status.refunded
    assert transitions(fx) == [(Status.accepted, Status.refunded)]
    assert (c.purchase_count, c.purchase_items) == (0, Decimal(0))
    assert refused(partial("0.01"), c, txn) == "already_refunded"


def test_refund_of_a_free_checkout_revokes_its_points_and_restores_its_burn() -> None:
    c = rich_customer()
    txn = _free_checkout(c)
    assert balances(c) == (107, 102, 0, 5)
    fx = do_refund(c, txn)
    assert (txn.points_revoked, txn.points_restored) == (7, 5)
    assert points_of(fx) == only_refund_points(7, 5)
    assert balances(c) == (100, 100, 0, 0)


# --- proportional_share -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("whole", "part", "total", "expected"),
    [
        (45, "150", "150", 45),  # part reaches total: the whole
        (45, "151", "150", 45),  # beyond total: still the whole, never more
        (45, "0", "150", 0),
        (45, "50", "150", 15),
        (45, "149.99", "150", 44),  # floors: 44.997
        (10, "47.50", "150", 3),
        (0, "75", "150", 0),
        (7, "0", "0", 7),  # total 0: part 0 already reaches it
        (7, "1", "0", 7),
        (7, "-1", "0", 0),  # only a part below a zero total gives nothing
        (10**12, "0.000001", "1000000000000", 0),
        (10**12, "999999999999.999999", "1000000000000", 999999999999),
    ],
)
def test_proportional_share_edges(whole: int, part: str, total: str, expected: int) -> None:
    assert proportional_share(whole, Decimal(part), Decimal(total)) == expected


MONEY = st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False, allow_infinity=False)


@settings(deadline=None, max_examples=200)
@given(
    whole=st.integers(min_value=0, max_value=10**9),
    a=MONEY,
    b=MONEY,
    total=st.decimals(min_value=Decimal("0.01"), max_value=10**6, places=2),
)
def test_proportional_share_is_the_floor_and_monotone_in_part(
    whole: int, a: Decimal, b: Decimal, total: Decimal
) -> None:
    low, high = sorted((a, b))
    s_low, s_high = (proportional_share(whole, p, total) for p in (low, high))
    assert 0 <= s_low <= s_high <= whole
    assert s_low == floor_share(whole, low, total)
    assert s_high == floor_share(whole, high, total)
    assert proportional_share(whole, total, total) == whole
    assert proportional_share(whole, Decimal(0), total) == 0


# --- Properties ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    product_id: str
    units: int  # the quantity is units / den: 0.25, 0.5 or 1 steps
    den: int
    subtotal: Decimal

    @property
    def quantity(self) -> Decimal:
        return Decimal(self.units) / Decimal(self.den)

    def amount(self, units: int) -> Decimal:
        """The oracle for the pro rata amount of ``units`` units (cumulative, cents)."""
        if units >= self.units:
            return self.subtotal
        return (self.subtotal * units / self.units).quantize(CENT, ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Scenario:
    program: Program
    currency: str
    lines: tuple[Line, ...]
    extra: Decimal  # shipping and such: in the total, on no item
    burn: int
    coupons: tuple[str, ...]
    s0: dict[str, Any] = field(hash=False)

    @property
    def total(self) -> Decimal:
        return sum((line.subtotal for line in self.lines), Decimal(0)) + self.extra

    def customer(self) -> Customer:
        return Customer(program="acme", customer_id=CUSTOMER, **self.s0)

    def event(self) -> Checkout:
        items = [
            {"product_id": line.product_id, "subtotal": line.subtotal, "quantity": line.quantity}
            for line in self.lines
        ]
        data = {
            "transaction_id": TID,
            "total": self.total,
            "currency": self.currency,
            "points_burned": self.burn,
            "items": items,
            "coupons": list(self.coupons),
        }
        return checkout({"action": "checkout", "customer": CUSTOMER, "data": data})

    def world(self) -> tuple[Customer, Transaction, list[Effects]]:
        """S0, then the checkout (accepted at once, or pending then accepted)."""
        c = self.customer()
        fx = effects("checkout", AT, "checkout")
        txn = register_checkout(self.program, self.event(), c, None, fx)
        done = [fx]
        if txn.status is Status.pending:
            done.append(effects("checkout_accept", AT + timedelta(minutes=1), "accept"))
            accept_checkout(c, txn, done[-1])
        assert txn.status is Status.accepted
        assert txn.points_earned == txn.points_to_earn
        return c, txn, done


SUBTOTALS = st.decimals(min_value=CENT, max_value=500, places=2, allow_nan=False, allow_infinity=False)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    earn: dict[str, Any] = {
        "level": "item",
        "points_per_unit": draw(st.decimals(min_value=0, max_value=10, places=2), label="points_per_unit"),
        "rounding": draw(st.sampled_from(list(Rounding)), label="rounding").value,
    }
    campaign = draw(
        st.none()
        | st.fixed_dictionaries(
            {
                "id": st.just("promo"),
                "points": st.integers(min_value=1, max_value=50),
                "points_per_unit": st.decimals(min_value=0, max_value=2, places=1),
                "conditions": st.fixed_dictionaries({}, optional={"min_total": st.integers(0, 300)}),
            }
        ),
        label="campaign",
    )
    if campaign is not None:
        earn["campaigns"] = [campaign]
    body: dict[str, Any] = {"name": "acme", "currency": "EUR", "earn": earn}
    if draw(st.booleans(), label="pending"):
        body["pending_period"] = {"seconds": PENDING_SECONDS}
    currency = "EUR"
    if draw(st.booleans(), label="foreign"):
        currency = "USD"
        body["exchange_rates"] = {
            "USD": draw(st.decimals(min_value=CENT, max_value=3, places=4), label="rate")
        }
    program = Program.model_validate(body)

    n = draw(st.integers(min_value=1, max_value=5), label="items")
    lines = tuple(
        Line(
            f"p{i}",
            draw(st.integers(min_value=1, max_value=8)),
            draw(st.sampled_from([1, 2, 4])),
            draw(SUBTOTALS).quantize(CENT),
        )
        for i in range(n)
    )
    extra = draw(st.just(Decimal(0)) | st.decimals(min_value=0, max_value=50, places=2), label="extra")
    spendable = draw(st.integers(min_value=0, max_value=5000), label="spendable")
    s0 = {
        "score": draw(st.integers(min_value=0, max_value=10**6), label="score"),
        "spendable": spendable,
        "pending": draw(st.integers(min_value=0, max_value=5000), label="pending"),
        "spent": draw(st.integers(min_value=0, max_value=5000), label="spent"),
        "purchase_total": draw(st.decimals(min_value=0, max_value=10**5, places=2), label="purchase_total"),
        "purchase_count": draw(st.integers(min_value=0, max_value=100), label="purchase_count"),
        "purchase_items": draw(st.decimals(min_value=0, max_value=500, places=2), label="purchase_items"),
        "purchase_first_date": draw(st.none() | st.just(AT - timedelta(days=30)), label="first"),
        "purchase_last_date": draw(st.none() | st.just(AT - timedelta(days=3)), label="last"),
    }
    burn = draw(st.integers(min_value=0, max_value=spendable), label="burn")
    coupons = tuple(
        draw(st.lists(st.sampled_from(["c1", "c2", "c3"]), unique=True, max_size=2), label="coupons")
    )
    return Scenario(program, currency, lines, extra, burn, coupons, s0)


def s0_values(sc: Scenario) -> tuple[Any, ...]:
    s = sc.s0
    return (
        s["score"],
        s["spendable"],
        s["pending"],
        s["spent"],
        s["purchase_total"],
        s["purchase_count"],
        s["purchase_items"],
    )


def after_single_refund(sc: Scenario) -> Customer:
    c, txn, _ = sc.world()
    refund(c, txn, [], effects("refund", LATER, "twin"))
    return c


class Refunding:
    """A transaction being refunded step by step; checks every step against the oracle."""

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.c, self.txn, self.done = sc.world()
        self.start = (sc.s0["score"], sc.s0["spendable"], sc.s0["pending"], sc.s0["spent"])
        self.earned, self.burned = self.txn.points_earned, self.txn.points_burned
        self.steps = 0

    @property
    def left(self) -> Decimal:
        return self.txn.total - self.txn.refunded

    def apply(self, call: Call, amount: Decimal, quantity: Decimal = Decimal(0)) -> Effects:
        """Runs ``call``, which must refund exactly ``amount`` (and ``quantity`` units)."""
        txn, c = self.txn, self.c
        before_status = txn.status
        before_refunded, before_total = txn.refunded, c.purchase_total
        before_items = c.purchase_items
        units_left = sum((i.quantity - i.refunded_quantity for i in txn.items), Decimal(0))
        before_revoked, before_restored = txn.points_revoked, txn.points_restored
        self.steps += 1
        fx = effects("refund", LATER + timedelta(minutes=self.steps), f"r{self.steps}")
        call(c, txn, fx)
        self.done.append(fx)

        assert txn.refunded == before_refunded + amount
        assert txn.refunded <= txn.total
        assert c.purchase_total == before_total - amount * txn.rate
        revoke = txn.points_revoked - before_revoked
        restore = txn.points_restored - before_restored
        # The cumulative rule: what has moved is floor(whole * R / total).
        assert txn.points_revoked == floor_share(self.earned, txn.refunded, txn.total)
        assert txn.points_restored == floor_share(self.burned, txn.refunded, txn.total)
        assert points_of(fx) == only_refund_points(revoke, restore)
        expected_moves = [(Movement.revoked, revoke)] if revoke else []
        expected_moves += [(Movement.restored, restore)] if restore else []
        assert moves(fx) == expected_moves
        assert_ledger_matches(c, self.start, [e for f in self.done for e in f.ledger])

        full = txn.refunded == txn.total
        # units leave purchase_items as they are refunded; a full refund takes all that are left
        assert c.purchase_items == before_items - (units_left if full else quantity)
        if full:
            assert txn.status is Status.refunded
            assert transitions(fx) == [(before_status, Status.refunded)]
            assert hook_types(fx)[-1] == "transaction.refunded"
            assert txn.coupons_unredeemed == list(self.sc.coupons)
            assert hook_types(fx).count("coupon.unredeemed") == len(self.sc.coupons)
            assert all(i.refunded_quantity == i.quantity for i in txn.items)
        else:
            assert txn.status is Status.partially_refunded
            if before_status is Status.accepted:
                assert transitions(fx) == [(Status.accepted, Status.partially_refunded)]
            else:
                assert fx.status_changes == []
            assert hook_types(fx)[-1] == "transaction.partially_refunded"
            assert txn.coupons_unredeemed == []
            assert "coupon.unredeemed" not in hook_types(fx)
        return fx

    def assert_fully_refunded_like(self, twin: Customer) -> None:
        txn, c = self.txn, self.c
        assert txn.status is Status.refunded
        assert txn.refunded == txn.total
        assert txn.points_revoked == txn.points_earned
        assert txn.points_restored == txn.points_burned
        assert balances(c) == balances(twin)
        assert purchases(c) == purchases(twin)
        assert balances(c) == self.start
        assert (c.purchase_total, c.purchase_count) == (
            self.sc.s0["purchase_total"],
            self.sc.s0["purchase_count"],
        )


PROPERTY = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(sc=scenarios())
def test_property_a_full_refund_restores_the_customer_exactly(sc: Scenario) -> None:
    c, txn, done = sc.world()
    start = (sc.s0["score"], sc.s0["spendable"], sc.s0["pending"], sc.s0["spent"])
    assert c.purchase_count == sc.s0["purchase_count"] + 1
    earned, burned = txn.points_earned, txn.points_burned
    fx = effects("refund", LATER, "refund")
    refund(c, txn, [], fx)
    done.append(fx)

    assert (*balances(c), *purchases(c)) == s0_values(sc)
    assert txn.status is Status.refunded
    assert txn.refunded == txn.total == sc.total
    assert (txn.points_revoked, txn.points_restored) == (earned, burned)
    assert all(i.refunded_quantity == i.quantity for i in txn.items)
    assert points_of(fx) == only_refund_points(earned, burned)
    assert transitions(fx) == [(Status.accepted, Status.refunded)]
    assert txn.coupons_unredeemed == list(sc.coupons)
    assert_ledger_matches(c, start, [e for f in done for e in f.ledger])


@PROPERTY
@given(sc=scenarios(), data=st.data())
def test_property_b_partial_refunds_covering_the_total_equal_one_refund(
    sc: Scenario, data: st.DataObject
) -> None:
    run = Refunding(sc)
    for _ in range(data.draw(st.integers(min_value=0, max_value=5), label="steps")):
        left = run.left
        amount = data.draw(
            st.decimals(min_value=Decimal("0.000001"), max_value=left, places=6), label="amount"
        )
        run.apply(partial(amount), amount)
        if run.txn.status is Status.refunded:
            break
    if run.txn.status is not Status.refunded:
        left = run.left
        run.apply(partial(left), left)  # the last one takes exactly what is left
    run.assert_fully_refunded_like(after_single_refund(sc))
    assert purchases(run.c) == s0_values(sc)[4:]


@st.composite
def item_plans(draw: st.DrawFn, lines: tuple[Line, ...]) -> list[tuple[int, int]]:
    """Each item's units split at random, all pieces in a random order: (line, units)."""
    pieces = []
    for i, line in enumerate(lines):
        cuts = sorted(draw(st.sets(st.integers(1, line.units - 1), max_size=3))) if line.units > 1 else []
        bounds = [0, *cuts, line.units]
        pieces += [(i, b - a) for a, b in itertools.pairwise(bounds)]
    return draw(st.permutations(pieces))


@PROPERTY
@given(sc=scenarios(), data=st.data())
def test_property_b_item_refunds_covering_every_item_equal_one_refund(
    sc: Scenario, data: st.DataObject
) -> None:
    run = Refunding(sc)
    plan = data.draw(item_plans(sc.lines), label="plan")
    refunded_units = [0] * len(sc.lines)
    for n, (i, units) in enumerate(plan):
        line = sc.lines[i]
        before, after = refunded_units[i], refunded_units[i] + units
        last = n == len(plan) - 1
        pro_rata = line.amount(after) - line.amount(before)
        explicit = data.draw(
            st.none() | st.decimals(min_value=0, max_value=pro_rata, places=2), label="subtotal"
        )
        amount = run.left if last else (pro_rata if explicit is None else explicit)
        quantity = Decimal(units) / line.den
        run.apply(item(line.product_id, quantity, explicit), amount, quantity)
        refunded_units[i] = after
        if run.txn.status is Status.refunded:
            # the amount reached what was left (rounding up a tiny subtotal, with no extra):
            # the transaction is refunded even if units were not all named
            break
        assert run.txn.items[i].refunded_quantity == Decimal(after) / line.den
    run.assert_fully_refunded_like(after_single_refund(sc))


@PROPERTY
@given(sc=scenarios(), data=st.data())
def test_property_mixed_partial_and_item_refunds_then_the_rest_equal_one_refund(
    sc: Scenario, data: st.DataObject
) -> None:
    run = Refunding(sc)
    units_left = [line.units for line in sc.lines]
    for kind in data.draw(st.lists(st.sampled_from(["partial", "item"]), max_size=6), label="kinds"):
        if run.txn.status is Status.refunded:
            break
        left = run.left
        if kind == "partial":
            amount = data.draw(st.decimals(min_value=Decimal("0.000001"), max_value=left, places=6))
            run.apply(partial(amount), amount)
            continue
        i = data.draw(st.sampled_from([k for k, u in enumerate(units_left) if u > 0]), label="line")
        line = sc.lines[i]
        units = data.draw(st.integers(min_value=1, max_value=units_left[i]), label="units")
        explicit = data.draw(
            st.none() | st.decimals(min_value=0, max_value=sc.total, places=2), label="subtotal"
        )
        before = line.units - units_left[i]
        last = sum(units_left) == units
        if last:
            amount = left
        elif explicit is not None:
            amount = explicit
        else:
            amount = line.amount(before + units) - line.amount(before)
        call = item(line.product_id, Decimal(units) / line.den, explicit)
        if amount > left:
            assert refused(call, run.c, run.txn) == "over_refund"
            continue
        run.apply(call, amount, Decimal(units) / line.den)
        units_left[i] -= units
    if run.txn.status is not Status.refunded:
        left = run.left
        run.apply(whole_refund(), left)
    run.assert_fully_refunded_like(after_single_refund(sc))


# --- Explicit unredeem -------------------------------------------------------------------------


def test_offer_unredeem_gives_back_offers_without_refunding() -> None:
    c, txn = bought(offers=["o1", "o2"])
    before = balances(c)
    fx = effects("offer_unredeem", LATER)
    unredeem_offers(txn, ["o2"], fx)
    assert txn.offers_unredeemed == ["o2"] and txn.status is Status.accepted and txn.refunded == 0
    assert hook_types(fx) == ["offer.unredeemed"] and balances(c) == before
    with pytest.raises(Rejected) as again:
        unredeem_offers(txn, ["o2"], effects("offer_unredeem", LATER))
    assert again.value.code == "unknown_offer"


def test_coupon_unredeem_after_a_reject_gives_the_coupon_back_once() -> None:
    txn = register_checkout(
        PENDING_PROGRAM, seed_earning_45(coupons=["C24RR562"]), rich_customer(), None, effects()
    )
    reject_checkout(None, txn, effects("checkout_reject", LATER))
    assert txn.coupons_unredeemed == []  # a reject leaves the coupon redeemed
    fx = effects("coupon_unredeem", LATER)
    unredeem_coupon(txn, "C24RR562", fx)
    assert txn.coupons_unredeemed == ["C24RR562"] and hook_types(fx) == ["coupon.unredeemed"]
    for code in ("C24RR562", "NOT-MINE"):
        with pytest.raises(Rejected) as exc:
            unredeem_coupon(txn, code, effects("coupon_unredeem", LATER))
        assert exc.value.code == "unknown_coupon"


def test_unredeem_on_a_draft_parks() -> None:
    txn = Transaction.draft("acme", TID, AT)
    with pytest.raises(Parked):
        unredeem_coupon(txn, "X", effects("coupon_unredeem"))
    with pytest.raises(Parked):
        unredeem_offers(txn, ["o"], effects("offer_unredeem"))
