"""Pending-period rules (Antavo's checkout accept module): update, accept, reject, and
point_unspend after a reject. Pure: state in, state changed and effects recorded, or
Rejected (can never apply) / Parked (waits for a state that may still come).

Checks run before the first change, so a rejected or parked event leaves state untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from services.domain.checkout import apply_pricing, await_checkout, check_burn, check_metadata, price_purchase
from services.domain.customer import Customer, Movement, record_purchase
from services.domain.effects import Effects, Parked, Rejected
from services.domain.program import Program
from services.domain.purchase import CheckoutUpdate
from services.domain.transaction import Status, Transaction


def check_customer(event_customer: str | None, txn: Transaction) -> None:
    """An event that names a customer must name the transaction's own. One that names none
    (a guest checkout's, sent before or after a claim) applies to the transaction's owner."""
    if txn.customer is None or event_customer is None or event_customer == txn.customer:
        return
    raise Rejected("customer_mismatch", f"transaction {txn.transaction_id} belongs to another customer")


def _require_pending(txn: Transaction, action: str) -> None:
    await_checkout(txn)
    if txn.status is not Status.pending:
        raise Rejected(
            "not_pending", f"cannot {action} transaction {txn.transaction_id}: it is {txn.status.value}"
        )


def update_checkout(
    program: Program,
    update: CheckoutUpdate,
    customer: Customer | None,
    txn: Transaction,
    effects: Effects,
    categories: Mapping[str, str] | None = None,
) -> None:
    """Replace total, items and points of a pending transaction; pending points follow."""
    _require_pending(txn, "update")
    # What the update leaves out keeps its value: it is priced on the merged contents.
    data = replace(
        update,
        currency=update.currency or txn.currency,
        store=update.store if update.store is not None else txn.store,
        metadata=update.metadata if update.metadata is not None else txn.metadata,
    )
    burned = txn.points_burned if data.points_burned is None else data.points_burned
    check_burn(customer, burned - txn.points_burned)
    check_metadata(program, data.metadata)
    # Earn rules are those in force at the purchase, not at the update.
    pricing = price_purchase(
        program,
        data,
        points_burned=burned,
        purchase_type=txn.type.value,
        occurred_at=txn.occurred_at,
        categories=categories,
    )
    at = effects.meta.occurred_at
    old_burned, old_pending = txn.points_burned, txn.points_pending
    txn.total = data.total
    txn.currency = (data.currency or txn.currency).upper()
    txn.store = data.store
    txn.metadata = data.metadata
    if data.auto_accept is not None:
        txn.auto_accept_at = data.auto_accept
    txn.points_burned = burned
    apply_pricing(txn, pricing)
    txn.touch(at)
    if customer is not None:
        tid = txn.transaction_id
        if burned > old_burned:
            effects.move(customer, Movement.burned, burned - old_burned, tid)
        elif burned < old_burned:
            effects.move(customer, Movement.restored, old_burned - burned, tid)
        new_pending = txn.points_to_earn
        if new_pending > old_pending:
            effects.move(customer, Movement.pending, new_pending - old_pending, tid)
        elif new_pending < old_pending:
            effects.move(customer, Movement.pending_dropped, old_pending - new_pending, tid)
        txn.points_pending = new_pending
    effects.announce("transaction.updated", txn)


def accept_checkout(customer: Customer | None, txn: Transaction, effects: Effects) -> None:
    """Pending points become earned; purchase attributes are updated now, not before."""
    _require_pending(txn, "accept")
    at = effects.meta.occurred_at
    txn.status = Status.accepted
    txn.accepted_at = at
    txn.touch(at)
    if customer is not None:
        effects.move(customer, Movement.pending_earned, txn.points_pending, txn.transaction_id)
        txn.points_earned, txn.points_pending = txn.points_pending, 0
        record_purchase(customer, txn.converted_total, txn.item_quantity, txn.occurred_at)
    effects.transition(txn, Status.pending, "transaction.accepted")


def reject_checkout(customer: Customer | None, txn: Transaction, effects: Effects) -> None:
    """Pending points are dropped; burned points and redeemed coupons stay spent."""
    _require_pending(txn, "reject")
    at = effects.meta.occurred_at
    txn.status = Status.rejected
    txn.rejected_at = at
    txn.touch(at)
    if customer is not None:
        effects.move(customer, Movement.pending_dropped, txn.points_pending, txn.transaction_id)
        txn.points_pending = 0
    effects.transition(txn, Status.pending, "transaction.rejected")


def unspend_points(customer: Customer | None, txn: Transaction, effects: Effects) -> None:
    """Give back the points a rejected checkout burned (Antavo's point_unspend)."""
    await_checkout(txn)
    if txn.status is Status.pending:
        raise Parked(
            "awaiting_reject", f"transaction {txn.transaction_id} is pending; unspend waits for a reject"
        )
    if txn.status is not Status.rejected:
        raise Rejected(
            "not_rejected", f"transaction {txn.transaction_id} is {txn.status.value}, not rejected"
        )
    remaining = txn.points_burned - txn.points_restored
    if customer is None or remaining == 0:
        raise Rejected(
            "nothing_to_unspend", f"transaction {txn.transaction_id} has no burned points to give back"
        )
    effects.move(customer, Movement.restored, remaining, txn.transaction_id)
    txn.points_restored += remaining
    txn.touch(effects.meta.occurred_at)
    effects.announce("transaction.updated", txn)


def expire_pending(program: Program, customer: Customer | None, txn: Transaction, effects: Effects) -> None:
    """The pending-period timer: accept (or reject, as the program says) a transaction that is
    still pending and due at the time the timer claimed it for. The guard makes the timer safe
    with any number of replicas and against a concurrent update moving ``auto_accept``."""
    due = txn.auto_accept_at
    if txn.status is not Status.pending or due is None or due > effects.meta.occurred_at:
        raise Rejected("not_due", f"transaction {txn.transaction_id} is no longer pending and due")
    on_expiry = program.pending_period.on_expiry if program.pending_period else "accept"
    (accept_checkout if on_expiry == "accept" else reject_checkout)(customer, txn, effects)
