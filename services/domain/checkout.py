"""Checkout rules: pricing a purchase, registering a checkout (item or transaction level,
guest) and claiming a guest checkout. Pure: state in, state changed and effects recorded, or
Rejected / Parked.

Every check runs before the first change, so a rejected or parked event leaves state untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from jsonschema import Draft202012Validator

from services.domain.allocation import allocate, proportional_share
from services.domain.customer import Customer, Movement, record_purchase
from services.domain.earn import Cart, CartItem, EarnResult, compute_earn
from services.domain.effects import Effects, Parked, Rejected
from services.domain.program import Program
from services.domain.purchase import Checkout, ProductLine, PurchaseContents
from services.domain.transaction import CampaignPoints, Item, Status, Transaction, benefit_data


def check_metadata(program: Program, metadata: dict[str, Any] | None) -> None:
    """Checkouts and updates must carry metadata valid for the program's schema. Points never
    depend on metadata, so the points preview does not check it."""
    if program.metadata_schema is None:
        return
    # With a schema, metadata is validated even when absent (as {}), so required fields hold.
    errors = sorted(Draft202012Validator(program.metadata_schema).iter_errors(metadata or {}), key=str)
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
        raise Rejected("invalid_metadata", f"metadata at {where}: {errors[0].message}")


def products_without_category(items: Iterable[ProductLine]) -> list[str]:
    """Product ids of items sent without a category: their catalog category is looked up."""
    return [item.product_id for item in items if item.category is None and item.product_id]


def catalog_categories(
    items: Iterable[ProductLine], product_doc: Callable[[str], Mapping[str, Any] | None]
) -> dict[str, str]:
    """The catalog category of each item's product, by product id (for :func:`price_purchase`)."""
    found = {}
    for item in items:
        if item.product_id is None:
            continue
        doc = product_doc(item.product_id)
        if doc is not None and doc.get("category"):
            found[item.product_id] = str(doc["category"])
    return found


@dataclass(slots=True)  # a value, not frozen: one is built per event (services/domain/purchase.py)
class Pricing:
    """What a purchase is worth: conversion rate, points and the priced order lines."""

    rate: Decimal
    earn: EarnResult
    items: list[Item]

    def fields(self) -> dict[str, Any]:
        """The transaction fields it sets."""
        return {
            "rate": self.rate,
            "points_base": self.earn.base,
            "points_bonus": self.earn.bonus,
            "campaigns": [CampaignPoints(campaign=c.campaign, points=c.points) for c in self.earn.campaigns],
            "items": self.items,
        }


def price_purchase(
    program: Program,
    data: PurchaseContents,
    *,
    points_burned: int,
    purchase_type: str,
    occurred_at: datetime,
    categories: Mapping[str, str] | None = None,
) -> Pricing:
    """Checks and prices a checkout's (or an update's) contents; raises Rejected, changes nothing.

    An item's category is its own, else its product's category in the catalog
    (``categories``, by product id), else none."""
    rate = program.rate_from(data.currency)
    if rate is None:
        raise Rejected(
            "currency_not_supported",
            f"currency {data.currency} is not {program.currency} and the program has no rate for it",
        )
    subtotals = [item.effective_subtotal for item in data.items]
    known = categories or {}
    item_categories = [item.category or known.get(item.product_id or "") for item in data.items]
    cart = Cart(
        total=data.total,
        items=tuple(
            CartItem(
                product_id=item.product_id,
                subtotal=subtotal,
                quantity=item.quantity,
                category=category,
                points_rewarded=item.points_rewarded,
            )
            for item, subtotal, category in zip(data.items, subtotals, item_categories, strict=True)
        ),
        rate=rate,
        store=data.store,
        type=purchase_type,
        occurred_at=occurred_at,
        points_rewarded=data.points_rewarded,
    )
    earn = compute_earn(program, cart)
    item_burns = allocate(points_burned, subtotals) if data.items else []
    items = [
        Item(
            product_id=item.product_id,
            product_name=item.product_name,
            product_url=item.product_url,
            category=item_categories[i],
            price=item.price,
            quantity=item.quantity,
            discount=item.discount,
            subtotal=subtotal,
            points_rewarded=earn.item_points[i] if earn.item_points else 0,
            points_burned=item_burns[i],
        )
        for i, (item, subtotal) in enumerate(zip(data.items, subtotals, strict=True))
    ]
    return Pricing(rate, earn, items)


def apply_pricing(txn: Transaction, pricing: Pricing) -> None:
    for name, value in pricing.fields().items():
        setattr(txn, name, value)


def check_burn(customer: Customer | None, extra_burn: int) -> None:
    """Burning is only for identified customers, and never beyond what they can spend."""
    if extra_burn <= 0:
        return
    if customer is None:
        raise Rejected("guest_cannot_burn", "a guest checkout cannot burn points")
    if extra_burn > customer.spendable:
        raise Rejected(
            "insufficient_points", f"points_burned {extra_burn} exceeds spendable {customer.spendable}"
        )


def credit_purchase(customer: Customer, txn: Transaction, effects: Effects) -> None:
    """Give the customer what the transaction earns, by its status: pending or earned (a
    rejected one earns nothing)."""
    points = txn.points_to_earn
    if txn.status is Status.pending:
        effects.move(customer, Movement.pending, points, txn.transaction_id)
        txn.points_pending = points
    elif txn.status is Status.accepted:
        effects.move(customer, Movement.earned, points, txn.transaction_id)
        txn.points_earned = points
        record_purchase(customer, txn.converted_total, txn.item_quantity, txn.occurred_at)


def _credit_refunded_purchase(customer: Customer, txn: Transaction, effects: Effects) -> None:
    """A claim after refunds (on another partition, so either order happens) leaves the
    claimer where the claim-then-refunds order would: earned, minus the refunds' cumulative
    share, and the purchase as far as it was not refunded."""
    points = txn.points_to_earn
    revoked = proportional_share(points, txn.refunded, txn.total)
    effects.move(customer, Movement.earned, points, txn.transaction_id)
    effects.move(customer, Movement.revoked, revoked, txn.transaction_id)
    txn.points_earned, txn.points_revoked = points, revoked
    if txn.status is Status.partially_refunded:
        kept = txn.item_quantity - sum((i.refunded_quantity for i in txn.items), Decimal(0))
        record_purchase(customer, (txn.total - txn.refunded) * txn.rate, kept, txn.occurred_at)


def await_checkout(txn: Transaction) -> None:
    if txn.status is Status.draft:
        raise Parked("awaiting_checkout", f"transaction {txn.transaction_id} has no checkout yet")


def register_checkout(
    program: Program,
    data: Checkout,
    customer: Customer | None,
    existing: Transaction | None,
    effects: Effects,
    categories: Mapping[str, str] | None = None,
) -> Transaction:
    """Register a checkout, filling in its draft when lifecycle or refund events came first."""
    meta = effects.meta
    if existing is not None and existing.status is not Status.draft:
        raise Rejected("transaction_exists", f"transaction {data.transaction_id} is already registered")
    check_burn(customer, data.points_burned)
    check_metadata(program, data.metadata)
    at = meta.occurred_at
    pricing = price_purchase(
        program,
        data,
        points_burned=data.points_burned,
        purchase_type=data.type.value,
        occurred_at=at,
        categories=categories,
    )
    pending = program.pending_period
    # What the customer gets is set before transaction.created announces it (the burn and
    # the credit below then change balances, not the transaction); a guest gets nothing yet.
    points = pricing.earn.points if customer is not None else 0
    # Built whole, in one call: the rules never hold a half-filled transaction.
    txn = Transaction(
        program=program.name,
        transaction_id=data.transaction_id,
        customer=data.customer,
        guest=data.guest,
        status=Status.pending if pending else Status.accepted,
        type=data.type,
        currency=(data.currency or program.currency).upper(),
        total=data.total,
        points_burned=data.points_burned,
        coupons=list(data.coupons),
        offers=list(data.offers),
        store=data.store,
        metadata=data.metadata,
        utm_data=data.utm_data,
        occurred_at=at,
        created_at=at,
        updated_at=at,
        auto_accept_at=(data.auto_accept or at + pending.duration) if pending else None,
        accepted_at=None if pending else at,
        points_pending=points if pending else 0,
        points_earned=0 if pending else points,
        **pricing.fields(),
    )
    registered = effects.announce("transaction.created", txn)
    for code in txn.coupons:
        effects.benefit("coupon.redeemed", txn.customer, benefit_data(txn, "coupon", code))
    for offer in txn.offers:
        effects.benefit("offer.redeemed", txn.customer, benefit_data(txn, "offer", offer))
    if customer is not None:
        effects.move(customer, Movement.burned, data.points_burned, txn.transaction_id)
        credit_purchase(customer, txn, effects)
    effects.transition(
        txn,
        existing.status if existing else None,
        "transaction.accepted" if txn.status is Status.accepted else None,
        registered,
    )
    return txn


def claim_guest_checkout(customer: Customer, txn: Transaction, effects: Effects) -> None:
    """The claiming customer gets what the guest checkout ``txn`` earns (the claim's own
    transaction id is the one ``txn`` was looked up by)."""
    tid = txn.transaction_id
    await_checkout(txn)
    if not txn.guest:
        raise Rejected("not_a_guest_checkout", f"transaction {tid} belongs to a customer")
    if txn.customer is not None:
        raise Rejected("already_claimed", f"transaction {tid} was claimed by another customer")
    txn.customer = customer.customer_id
    txn.touch(effects.meta.occurred_at)
    if txn.status in (Status.partially_refunded, Status.refunded):
        _credit_refunded_purchase(customer, txn, effects)
    else:
        credit_purchase(customer, txn, effects)
    effects.announce("transaction.claimed", txn)
