"""Checkout ingestion rules: registering a checkout (item or transaction level, guest) and
claiming a guest checkout. Pure: state in, state changed and effects recorded, or Rejected.

Every check runs before the first change, so a rejected event leaves state untouched.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from jsonschema import Draft202012Validator

from services.contract.inbound import CheckoutClaimEvent, CheckoutEvent
from services.domain.allocation import allocate
from services.domain.customer import Customer, Movement, record_purchase
from services.domain.earn import Cart, CartItem, compute_earn
from services.domain.effects import Effects, Rejected
from services.domain.program import Program
from services.domain.transaction import CampaignPoints, Item, Status, Transaction


def _check_metadata(program: Program, event: CheckoutEvent) -> None:
    if program.metadata_schema is None:
        return
    # With a schema, metadata is validated even when absent (as {}), so required fields hold.
    metadata = event.data.metadata if event.data.metadata is not None else {}
    errors = sorted(Draft202012Validator(program.metadata_schema).iter_errors(metadata), key=str)
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
        raise Rejected("invalid_metadata", f"metadata at {where}: {errors[0].message}")


def cart_of(event: CheckoutEvent, rate: Decimal, occurred_at: datetime) -> Cart:
    data = event.data
    return Cart(
        total=data.total,
        items=tuple(
            CartItem(
                product_id=item.product_id,
                subtotal=item.effective_subtotal,
                quantity=item.quantity,
                category=item.category,
                points_rewarded=item.points_rewarded,
            )
            for item in data.items
        ),
        rate=rate,
        store=data.store,
        type=data.type.value,
        occurred_at=occurred_at,
        points_rewarded=data.points_rewarded,
    )


def credit_purchase(customer: Customer, txn: Transaction, effects: Effects) -> None:
    """Give the customer what the transaction earns, by its status: pending or earned."""
    points = txn.points_to_earn
    if txn.status is Status.pending:
        effects.move(customer, Movement.pending, points, txn.transaction_id)
        txn.points_pending = points
    elif txn.status is Status.accepted:
        effects.move(customer, Movement.earned, points, txn.transaction_id)
        txn.points_earned = points
        record_purchase(customer, txn.converted_total, txn.item_quantity, txn.occurred_at)


def register_checkout(
    program: Program,
    event: CheckoutEvent,
    customer: Customer | None,
    existing: Transaction | None,
    effects: Effects,
) -> Transaction:
    data = event.data
    meta = effects.meta
    if existing is not None and existing.status is not Status.draft:
        raise Rejected("transaction_exists", f"transaction {data.transaction_id} is already registered")
    rate = program.rate_from(data.currency)
    if rate is None:
        raise Rejected(
            "currency_not_supported",
            f"currency {data.currency} is not {program.currency} and the program has no rate for it",
        )
    _check_metadata(program, event)
    if data.points_burned and customer is None:
        raise Rejected("guest_cannot_burn", "a guest checkout cannot burn points")
    if customer is not None and data.points_burned > customer.spendable:
        raise Rejected(
            "insufficient_points",
            f"points_burned {data.points_burned} exceeds spendable {customer.spendable}",
        )

    earn = compute_earn(program, cart_of(event, rate, meta.occurred_at))
    subtotals = [item.effective_subtotal for item in data.items]
    item_burns = allocate(data.points_burned, subtotals) if data.items else []
    pending = program.pending_period
    at = meta.occurred_at
    txn = Transaction(
        program=program.name,
        transaction_id=data.transaction_id,
        customer=event.customer,
        guest=event.guest,
        status=Status.pending if pending else Status.accepted,
        type=data.type,
        currency=(data.currency or program.currency).upper(),
        rate=rate,
        total=data.total,
        points_base=earn.base,
        points_bonus=earn.bonus,
        campaigns=[CampaignPoints(campaign=c.campaign, points=c.points) for c in earn.campaigns],
        points_burned=data.points_burned,
        items=[
            Item(
                product_id=item.product_id,
                product_name=item.product_name,
                product_url=item.product_url,
                category=item.category,
                price=item.price,
                quantity=item.quantity,
                discount=item.discount,
                subtotal=subtotal,
                points_rewarded=earn.item_points[i] if earn.item_points else 0,
                points_burned=item_burns[i],
            )
            for i, (item, subtotal) in enumerate(zip(data.items, subtotals, strict=True))
        ],
        coupons=list(data.coupons),
        offers=list(data.offers),
        store=data.store,
        metadata=data.metadata,
        utm_data=data.utm_data,
        occurred_at=at,
        created_at=existing.created_at if existing else at,
        updated_at=at,
        auto_accept_at=(data.auto_accept or at + pending.duration) if pending else None,
        accepted_at=None if pending else at,
    )
    if customer is not None:
        # Set before announcing, so that transaction.created shows what the customer gets.
        txn.points_pending = txn.points_to_earn if txn.status is Status.pending else 0
        txn.points_earned = txn.points_to_earn if txn.status is Status.accepted else 0
    effects.announce("transaction.created", txn)
    if customer is not None:
        effects.move(customer, Movement.burned, data.points_burned, txn.transaction_id)
        credit_purchase(customer, txn, effects)
    effects.transition(
        txn,
        existing.status if existing else None,
        "transaction.accepted" if txn.status is Status.accepted else None,
    )
    return txn


def claim_guest_checkout(
    event: CheckoutClaimEvent, customer: Customer, txn: Transaction | None, effects: Effects
) -> None:
    tid = event.data.transaction_id
    if txn is None or txn.status is Status.draft:
        raise Rejected("unknown_transaction", f"transaction {tid} is not registered")
    if not txn.guest:
        raise Rejected("not_a_guest_checkout", f"transaction {tid} belongs to a customer")
    if txn.customer is not None:
        raise Rejected("already_claimed", f"transaction {tid} was claimed by another customer")
    if txn.status not in (Status.pending, Status.accepted):
        raise Rejected("not_claimable", f"transaction {tid} is {txn.status.value}")
    txn.customer = customer.customer_id
    txn.updated_at = effects.meta.occurred_at
    credit_purchase(customer, txn, effects)
    effects.announce("transaction.claimed", txn)
