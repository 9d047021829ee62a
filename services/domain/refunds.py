"""Refund rules (Antavo's refund, partial_refund and refund_item): give back exactly what the
purchase gave. Pure: state in, state changed and effects recorded, or Rejected / Parked.

The rule that never drifts (docs/points.md): every refund adds to the transaction's refunded
amount R; what has been revoked (or restored) after it is ``floor(whole * R / total)``, and
each refund moves the difference from what refunds had moved before. When R reaches the total,
that is exactly the whole, so any sequence of partial or item refunds covering the whole
transaction moves exactly what one full refund moves.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from services.domain.allocation import proportional_share
from services.domain.checkout import await_checkout
from services.domain.customer import Customer, Movement
from services.domain.effects import Effects, Parked, Rejected
from services.domain.transaction import Item, Status, Transaction, benefit_data


def _check_refundable(txn: Transaction) -> None:
    await_checkout(txn)
    if txn.status is Status.pending:
        raise Parked(
            "awaiting_accept", f"transaction {txn.transaction_id} is pending; refunds wait for an accept"
        )
    if txn.status is Status.rejected:
        raise Rejected("transaction_rejected", f"transaction {txn.transaction_id} was rejected")
    if txn.status is Status.refunded:
        raise Rejected("already_refunded", f"transaction {txn.transaction_id} is already fully refunded")


def _announce_offers(txn: Transaction, offers: list[str], effects: Effects) -> None:
    for offer in offers:
        txn.offers_unredeemed.append(offer)
        effects.benefit("offer.unredeemed", txn.customer, benefit_data(txn, "offer", offer))


def _check_offers(txn: Transaction, offers: list[str]) -> None:
    if len(set(offers)) != len(offers):
        raise Rejected("duplicate_offer", f"an offer is listed twice: {offers}")
    unknown = [o for o in offers if o not in txn.offers or o in txn.offers_unredeemed]
    if unknown:
        raise Rejected(
            "unknown_offer", f"offers {unknown} are not redeemed with transaction {txn.transaction_id}"
        )


def _item_amount(item: Item, refunded_quantity: Decimal) -> Decimal:
    """The part of an item's subtotal that ``refunded_quantity`` units stand for, rounded to
    the money's precision (cents at least); the whole subtotal for the whole quantity."""
    if refunded_quantity >= item.quantity:
        return item.subtotal
    given = item.subtotal.as_tuple().exponent
    exponent = min(given, -2) if isinstance(given, int) else -2
    return (item.subtotal * refunded_quantity / item.quantity).quantize(
        Decimal(1).scaleb(exponent), ROUND_HALF_EVEN
    )


def _apply_refund(
    customer: Customer | None,
    txn: Transaction,
    amount: Decimal,
    offers: list[str],
    effects: Effects,
    units: tuple[Item, Decimal] | None = None,
) -> None:
    """Move everything a refund of ``amount`` (and of ``units`` of an item) gives back;
    checks are done by the callers."""
    after = txn.refunded + amount
    full = after >= txn.total
    tid = txn.transaction_id
    # The cumulative share minus what refunds already moved (a refundable transaction was
    # never rejected, so points_restored only counts refunds).
    revoke = proportional_share(txn.points_earned, after, txn.total) - txn.points_revoked
    restore = proportional_share(txn.points_burned, after, txn.total) - txn.points_restored
    items_back = Decimal(0)
    if units is not None:
        item, quantity = units
        item.refunded_quantity += quantity
        items_back += quantity
    if full:
        for item in txn.items:
            items_back += item.quantity - item.refunded_quantity
            item.refunded_quantity = item.quantity
    txn.refunded = after
    txn.points_revoked += revoke
    txn.points_restored += restore
    txn.touch(effects.meta.occurred_at)
    if customer is not None:
        effects.move(customer, Movement.revoked, revoke, tid)
        effects.move(customer, Movement.restored, restore, tid)
        customer.purchase_total -= amount * txn.rate
        customer.purchase_items -= items_back
        if full:
            customer.purchase_count -= 1
    _announce_offers(txn, offers, effects)
    from_status = txn.status
    if full:
        for coupon in txn.coupons:
            if coupon not in txn.coupons_unredeemed:
                txn.coupons_unredeemed.append(coupon)
                effects.benefit("coupon.unredeemed", txn.customer, benefit_data(txn, "coupon", coupon))
        txn.status = Status.refunded
        effects.transition(txn, from_status, "transaction.refunded")
    else:
        txn.status = Status.partially_refunded
        if from_status is not Status.partially_refunded:
            effects.transition(txn, from_status, "transaction.partially_refunded")
        else:
            effects.announce("transaction.partially_refunded", txn)


def refund(customer: Customer | None, txn: Transaction, offers: list[str], effects: Effects) -> None:
    """The whole transaction, or what is left of it."""
    _check_refundable(txn)
    _check_offers(txn, offers)
    _apply_refund(customer, txn, txn.total - txn.refunded, offers, effects)


def partial_refund(
    customer: Customer | None, txn: Transaction, amount: Decimal, offers: list[str], effects: Effects
) -> None:
    _check_refundable(txn)
    left = txn.total - txn.refunded
    if amount > left:
        raise Rejected("over_refund", f"refund of {amount} exceeds the {left} left on {txn.transaction_id}")
    _check_offers(txn, offers)
    _apply_refund(customer, txn, amount, offers, effects)


def refund_item(
    customer: Customer | None,
    txn: Transaction,
    product_id: str,
    quantity: Decimal,
    subtotal: Decimal | None,
    offers: list[str],
    effects: Effects,
) -> None:
    _check_refundable(txn)
    lines = [i for i in txn.items if i.product_id == product_id]
    if not lines:
        raise Rejected("unknown_item", f"transaction {txn.transaction_id} has no item {product_id}")
    item = next((i for i in lines if i.refunded_quantity < i.quantity), lines[0])
    if quantity > item.quantity - item.refunded_quantity:
        raise Rejected(
            "over_refund",
            f"refund of {quantity} x {product_id} exceeds the {item.quantity - item.refunded_quantity} left",
        )
    left = txn.total - txn.refunded
    after_quantity = item.refunded_quantity + quantity
    last_units = all(
        i.refunded_quantity >= i.quantity or (i is item and after_quantity >= i.quantity) for i in txn.items
    )
    if last_units:
        amount = left  # every item is back: the whole transaction is refunded
    elif subtotal is not None:
        amount = subtotal
    else:
        amount = _item_amount(item, after_quantity) - _item_amount(item, item.refunded_quantity)
    if amount > left:
        raise Rejected("over_refund", f"refund of {amount} exceeds the {left} left on {txn.transaction_id}")
    _check_offers(txn, offers)
    _apply_refund(customer, txn, amount, offers, effects, units=(item, quantity))


def unredeem_offers(txn: Transaction, offers: list[str], effects: Effects) -> None:
    """Give back offers redeemed with a purchase, without refunding it (Antavo's offer_unredeem)."""
    await_checkout(txn)
    _check_offers(txn, offers)
    _announce_offers(txn, offers, effects)
    txn.touch(effects.meta.occurred_at)


def unredeem_coupon(txn: Transaction, code: str, effects: Effects) -> None:
    """Give back a coupon redeemed with a purchase, e.g. after a reject (Antavo's
    coupon_unredeem); a full refund does this by itself."""
    await_checkout(txn)
    if code not in txn.coupons or code in txn.coupons_unredeemed:
        raise Rejected(
            "unknown_coupon", f"coupon {code} is not redeemed with transaction {txn.transaction_id}"
        )
    txn.coupons_unredeemed.append(code)
    effects.benefit("coupon.unredeemed", txn.customer, benefit_data(txn, "coupon", code))
    txn.touch(effects.meta.occurred_at)
