"""Customer balances change only through ledger movements; purchase attributes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.domain.customer import Customer, LedgerEntry, Movement, move_points, record_purchase

AT = datetime(2024, 1, 1, tzinfo=UTC)


def customer() -> Customer:
    return Customer(program="p", customer_id="c1")


def move(c: Customer, movement: Movement, points: int) -> LedgerEntry:
    return move_points(c, movement, points, transaction_id="t1", event_key="e1", at=AT)


@pytest.mark.parametrize(
    ("movement", "deltas"),
    [
        (Movement.pending, (0, 0, 1, 0)),
        (Movement.pending_dropped, (0, 0, -1, 0)),
        (Movement.pending_earned, (1, 1, -1, 0)),
        (Movement.earned, (1, 1, 0, 0)),
        (Movement.burned, (0, -1, 0, 1)),
        (Movement.revoked, (-1, -1, 0, 0)),
        (Movement.restored, (0, 1, 0, -1)),
    ],
)
def test_each_movement_changes_the_documented_balances(
    movement: Movement, deltas: tuple[int, int, int, int]
) -> None:
    c = customer()
    entry = move(c, movement, 7)
    expected = tuple(7 * d for d in deltas)
    assert (c.score, c.spendable, c.pending, c.spent) == expected
    assert (entry.score, entry.spendable, entry.pending, entry.spent) == expected
    assert entry.movement is movement
    assert entry.points == 7
    assert (entry.program, entry.customer_id, entry.transaction_id) == ("p", "c1", "t1")
    assert (entry.event_key, entry.at) == ("e1", AT)


@given(
    st.lists(
        st.tuples(st.sampled_from(list(Movement)), st.integers(min_value=0, max_value=10**9)),
        max_size=60,
    )
)
def test_balances_equal_the_sum_of_ledger_deltas(moves: list[tuple[Movement, int]]) -> None:
    c = customer()
    ledger = [move(c, movement, points) for movement, points in moves]
    assert c.score == sum(e.score for e in ledger)
    assert c.spendable == sum(e.spendable for e in ledger)
    assert c.pending == sum(e.pending for e in ledger)
    assert c.spent == sum(e.spent for e in ledger)
    assert all(e.points == p for e, (_, p) in zip(ledger, moves, strict=True))


def test_negative_points_raise_and_change_nothing() -> None:
    c = customer()
    move(c, Movement.earned, 5)
    with pytest.raises(ValueError):
        move(c, Movement.earned, -1)
    with pytest.raises(ValueError):
        move(c, Movement.burned, -3)
    assert (c.score, c.spendable, c.pending, c.spent) == (5, 5, 0, 0)


def test_revoke_may_drive_spendable_negative() -> None:
    c = customer()
    move(c, Movement.earned, 10)
    move(c, Movement.burned, 8)
    move(c, Movement.revoked, 10)
    assert (c.score, c.spendable, c.pending, c.spent) == (0, -8, 0, 8)


def test_record_purchase_updates_totals_count_dates_and_averages() -> None:
    c = customer()
    assert c.purchase_avg_total is None
    assert c.purchase_avg_items is None
    later = AT + timedelta(days=3)
    earlier = AT - timedelta(days=2)

    record_purchase(c, Decimal("100.50"), Decimal(3), AT)
    assert (c.purchase_total, c.purchase_count, c.purchase_items) == (Decimal("100.50"), 1, Decimal(3))
    assert c.purchase_first_date == c.purchase_last_date == AT

    record_purchase(c, Decimal("49.50"), Decimal(1), later)
    assert c.purchase_first_date == AT
    assert c.purchase_last_date == later

    record_purchase(c, Decimal(0), Decimal(2), earlier)  # an older purchase arriving late
    assert c.purchase_first_date == earlier
    assert c.purchase_last_date == later

    assert c.purchase_total == Decimal(150)
    assert c.purchase_count == 3
    assert c.purchase_items == Decimal(6)
    assert c.purchase_avg_total == Decimal(50)
    assert c.purchase_avg_items == Decimal(2)
    # Balances are not touched by purchases.
    assert (c.score, c.spendable, c.pending, c.spent) == (0, 0, 0, 0)
