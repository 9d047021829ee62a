"""A customer's balances and purchase attributes, changed only through ledger movements.

Invariant: every balance equals the sum of its deltas in the points ledger, because
:func:`move_points` is the only code that changes a balance and it returns the entry that
records the change. The repository writes both in the same database transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class Movement(StrEnum):
    pending = "pending"  # points waiting for the pending period: +pending
    pending_dropped = "pending_dropped"  # pending points of a rejected/updated checkout: -pending
    pending_earned = "pending_earned"  # accepted: -pending, +score, +spendable
    earned = "earned"  # earned at once: +score, +spendable
    burned = "burned"  # spent at checkout: -spendable, +spent
    revoked = "revoked"  # refunded purchase: -score, -spendable (spendable may go negative)
    restored = "restored"  # burned points given back (point_unburn / point_unspend): +spendable, -spent


# (score, spendable, pending, spent) per point moved.
_DELTAS: dict[Movement, tuple[int, int, int, int]] = {
    Movement.pending: (0, 0, 1, 0),
    Movement.pending_dropped: (0, 0, -1, 0),
    Movement.pending_earned: (1, 1, -1, 0),
    Movement.earned: (1, 1, 0, 0),
    Movement.burned: (0, -1, 0, 1),
    Movement.revoked: (-1, -1, 0, 0),
    Movement.restored: (0, 1, 0, -1),
}


@dataclass(slots=True)  # a value, not frozen: one is built per movement (services/domain/purchase.py)
class LedgerEntry:
    program: str
    customer_id: str
    transaction_id: str | None
    movement: Movement
    points: int
    score: int
    spendable: int
    pending: int
    spent: int
    event_key: str
    at: datetime


@dataclass
class Customer:
    program: str
    customer_id: str
    score: int = 0
    spendable: int = 0
    pending: int = 0
    spent: int = 0
    purchase_total: Decimal = Decimal(0)
    purchase_count: int = 0
    purchase_items: Decimal = Decimal(0)
    purchase_first_date: datetime | None = None
    purchase_last_date: datetime | None = None

    @property
    def purchase_avg_total(self) -> Decimal | None:
        return self.purchase_total / self.purchase_count if self.purchase_count else None

    @property
    def purchase_avg_items(self) -> Decimal | None:
        return self.purchase_items / self.purchase_count if self.purchase_count else None


def move_points(
    customer: Customer,
    movement: Movement,
    points: int,
    *,
    transaction_id: str | None,
    event_key: str,
    at: datetime,
) -> LedgerEntry:
    if points < 0:
        raise ValueError("points moved are never negative; the movement gives the direction")
    d_score, d_spendable, d_pending, d_spent = (d * points for d in _DELTAS[movement])
    customer.score += d_score
    customer.spendable += d_spendable
    customer.pending += d_pending
    customer.spent += d_spent
    return LedgerEntry(
        program=customer.program,
        customer_id=customer.customer_id,
        transaction_id=transaction_id,
        movement=movement,
        points=points,
        score=d_score,
        spendable=d_spendable,
        pending=d_pending,
        spent=d_spent,
        event_key=event_key,
        at=at,
    )


def record_purchase(customer: Customer, amount: Decimal, items: Decimal, at: datetime) -> None:
    """Purchase attributes change when a purchase is accepted, not before (Antavo)."""
    customer.purchase_total += amount
    customer.purchase_count += 1
    customer.purchase_items += items
    if customer.purchase_first_date is None or at < customer.purchase_first_date:
        customer.purchase_first_date = at
    if customer.purchase_last_date is None or at > customer.purchase_last_date:
        customer.purchase_last_date = at
