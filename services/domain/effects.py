"""What handling one event did, as plain data: ledger entries, status changes, webhooks and
the points effects reported in ``loyalty.event-results``. Domain functions append to an
:class:`Effects`; the outbox adapter turns it into messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.domain.customer import Customer, LedgerEntry, Movement, move_points
from services.domain.transaction import Status, Transaction


class Unapplied(Exception):
    """A valid event a rule did not apply, with a code for its result and why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Rejected(Unapplied):
    """Refused by a business rule; it changes nothing."""


class Parked(Unapplied):
    """It needs a state which may still come (its checkout, an accept): it waits, and is
    applied or rejected when its transaction changes (docs/parking.md)."""


# Values, never changed once built; slotted and not frozen, as several are built per event and
# a frozen dataclass costs several times as much to build (services/domain/purchase.py).
@dataclass(slots=True)
class EventMeta:
    program: str
    event_id: str  # also the inbox key the ledger and status history record
    action: str
    occurred_at: datetime


@dataclass(slots=True)
class StatusChange:
    transaction: dict[str, Any]
    from_status: Status | None
    to_status: Status


@dataclass(slots=True)
class Webhook:
    type: str
    customer: str | None
    data: dict[str, Any]


# The result field counting each movement; its webhook is the same name dotted
# (points_earned: points.earned). Dropped pending points are neither counted nor announced.
_POINTS_EFFECT = {
    Movement.earned: "points_earned",
    Movement.pending_earned: "points_earned",
    Movement.pending: "points_pending",
    Movement.burned: "points_burned",
    Movement.revoked: "points_revoked",
    Movement.restored: "points_restored",
}


@dataclass
class Effects:
    meta: EventMeta
    ledger: list[LedgerEntry] = field(default_factory=list)
    status_changes: list[StatusChange] = field(default_factory=list)
    webhooks: list[Webhook] = field(default_factory=list)
    points: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("points_earned", "points_pending", "points_burned", "points_revoked", "points_restored"), 0
        )
    )
    # The last snapshot taken of each transaction, by (program, transaction id): rules take it
    # as their last act on the transaction, so it is the state to store (docs/batching.md).
    snapshots: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def _post(self, customer: Customer, movement: Movement, points: int, transaction_id: str) -> None:
        """Move the points on the customer's balances and record the ledger entry."""
        self.ledger.append(
            move_points(
                customer,
                movement,
                points,
                transaction_id=transaction_id,
                event_key=self.meta.event_id,
                at=self.meta.occurred_at,
            )
        )

    def move(self, customer: Customer, movement: Movement, points: int, transaction_id: str) -> None:
        """Move points on the ledger, count them in the result and announce them by webhook."""
        if points == 0:
            return
        self._post(customer, movement, points, transaction_id)
        if (effect := _POINTS_EFFECT.get(movement)) is not None:
            self.points[effect] += points
            self.webhooks.append(
                Webhook(
                    effect.replace("_", ".", 1),
                    customer.customer_id,
                    {
                        "customer": customer.customer_id,
                        "transaction_id": transaction_id,
                        "points": points,
                        "balances": {
                            "score": customer.score,
                            "spendable": customer.spendable,
                            "pending": customer.pending,
                            "spent": customer.spent,
                        },
                        "negative_spendable": customer.spendable < 0,
                    },
                )
            )

    def transition(
        self,
        txn: Transaction,
        from_status: Status | None,
        webhook: str | None = None,
        snapshot: dict[str, Any] | None = None,
    ) -> None:
        """Record a status change (and its webhook) after ``txn`` has taken its new status.
        ``snapshot``: the one an ``announce`` of this same state returned (saves a dump)."""
        snapshot = snapshot or txn.snapshot()
        self.snapshots[(txn.program, txn.transaction_id)] = snapshot
        self.status_changes.append(StatusChange(snapshot, from_status, txn.status))
        if webhook is not None:
            self.webhooks.append(Webhook(webhook, txn.customer, {"transaction": snapshot}))

    def benefit(self, webhook: str, customer: str | None, data: dict[str, Any]) -> None:
        """A coupon or offer redeemed or given back."""
        self.webhooks.append(Webhook(webhook, customer, data))

    def announce(self, webhook: str, txn: Transaction) -> dict[str, Any]:
        """A webhook about the transaction as it is now; returns its snapshot."""
        snapshot = self.snapshots[(txn.program, txn.transaction_id)] = txn.snapshot()
        self.webhooks.append(Webhook(webhook, txn.customer, {"transaction": snapshot}))
        return snapshot
