"""Reference data from ``loyalty.catalog``: products, stores, offers and the coupons assigned
to customers. Plain values; the catalog changes never rewrite transactions already registered
(enrichment copies what it uses into the transaction)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import AliasChoices, AwareDatetime, BaseModel, ConfigDict, Field

from services.domain.effects import Rejected


class _Entity(BaseModel):
    # A field the contract does not name is refused; a producer's own attributes go in
    # ``metadata``, a free object kept with the entity.
    model_config = ConfigDict(extra="forbid")

    metadata: dict[str, Any] | None = None


class Product(_Entity):
    """Named in the checkout items' vocabulary (DESIGN.md section 2), so enrichment copies a
    field onto an order line under the same name. ``name`` and ``url`` are accepted as the
    older spellings."""

    product_id: str
    product_name: str | None = Field(default=None, validation_alias=AliasChoices("product_name", "name"))
    category: str | None = None
    product_url: str | None = Field(default=None, validation_alias=AliasChoices("product_url", "url"))
    image_url: str | None = None
    price: Decimal | None = None


class Store(_Entity):
    store_id: str
    name: str | None = None
    address: str | None = None
    city: str | None = None
    country: str | None = None
    latitude: Decimal | None = None
    longitude: Decimal | None = None


class Offer(_Entity):
    offer_id: str
    name: str | None = None
    active: bool = True


class CouponStatus(StrEnum):
    claimed = "claimed"
    partially_redeemed = "partially_redeemed"
    redeemed = "redeemed"
    # Withdrawn by the program (Antavo: benefits a refund does not revoke are invalidated by
    # a separate event): never usable again, never revived by a give-back or a new assignment.
    invalidated = "invalidated"


class Coupon(BaseModel):
    code: str
    customer: str
    type: Literal["amount", "percent", "gift_card"] = "amount"
    value: Decimal | None = None
    balance: Decimal | None = Field(default=None, description="gift cards: what is left to spend")
    currency: str | None = None
    expires_at: AwareDatetime | None = None
    pool: str | None = None
    status: CouponStatus = CouponStatus.claimed
    assigned_at: datetime | None = None


def assign_coupon(existing: Coupon | None, coupon: Coupon) -> Coupon:
    """A coupon code belongs to one customer; assigning it again to the same customer
    replaces its terms (a new pool or expiry) but never revives a redeemed coupon."""
    if existing is not None and existing.customer != coupon.customer:
        raise Rejected("coupon_taken", f"coupon {coupon.code} is assigned to another customer")
    if existing is not None and existing.status is CouponStatus.redeemed:
        raise Rejected("coupon_redeemed", f"coupon {coupon.code} is already redeemed")
    if existing is not None and existing.status is CouponStatus.invalidated:
        raise Rejected("coupon_invalidated", f"coupon {coupon.code} is invalidated")
    return coupon.model_copy(update={"status": existing.status if existing else CouponStatus.claimed})


def _refuse_unusable(code: str, coupon: Coupon | None, customer: str | None, at: datetime) -> Coupon:
    if coupon is None:
        raise Rejected("unknown_coupon", f"coupon {code} does not exist")
    if customer is None or coupon.customer != customer:
        raise Rejected("coupon_not_owned", f"coupon {code} is not assigned to this customer")
    if coupon.status is CouponStatus.redeemed:
        raise Rejected("coupon_redeemed", f"coupon {code} is already redeemed")
    if coupon.status is CouponStatus.invalidated:
        raise Rejected("coupon_invalidated", f"coupon {code} is invalidated")
    if coupon.expires_at is not None and at >= coupon.expires_at:
        raise Rejected("coupon_expired", f"coupon {code} expired at {coupon.expires_at.isoformat()}")
    return coupon


def coupons_for_checkout(
    codes: list[str], coupons: Mapping[str, Coupon | None], customer: str | None, at: datetime
) -> list[Coupon]:
    """The coupons a checkout redeems, all checked first: they must belong to the customer, be
    claimed or partially redeemed and unexpired. Gift cards are spent by ``coupon_redeem``
    with an amount, never by a checkout (as in Antavo)."""
    if len(set(codes)) != len(codes):
        raise Rejected("duplicate_coupon", f"a coupon is listed twice: {codes}")
    checked = [_refuse_unusable(code, coupons.get(code), customer, at) for code in codes]
    for coupon in checked:
        if coupon.type == "gift_card":
            raise Rejected("gift_card_needs_amount", f"gift card {coupon.code} is spent by coupon_redeem")
    return [c.model_copy(update={"status": CouponStatus.redeemed}) for c in checked]


def redeem_coupon(
    coupon: Coupon | None, code: str, customer: str, amount: Decimal | None, at: datetime
) -> Coupon:
    """``coupon_redeem``: a gift card gives ``amount`` of its balance; another coupon is used up."""
    coupon = _refuse_unusable(code, coupon, customer, at)
    if coupon.type != "gift_card":
        return coupon.model_copy(update={"status": CouponStatus.redeemed})
    if amount is None:
        raise Rejected("amount_required", f"gift card {code} needs an amount")
    balance = coupon.balance or Decimal(0)
    if amount > balance:
        raise Rejected("insufficient_balance", f"gift card {code} has {balance} left, not {amount}")
    left = balance - amount
    status = CouponStatus.redeemed if left == 0 else CouponStatus.partially_redeemed
    return coupon.model_copy(update={"balance": left, "status": status})


def invalidate_coupon(coupon: Coupon | None, code: str) -> Coupon:
    """``coupon_invalidate``: a coupon not used up can no longer be redeemed."""
    if coupon is None:
        raise Rejected("unknown_coupon", f"coupon {code} does not exist")
    if coupon.status is CouponStatus.redeemed:
        raise Rejected("coupon_redeemed", f"coupon {code} is already redeemed")
    if coupon.status is CouponStatus.invalidated:
        raise Rejected("coupon_invalidated", f"coupon {code} is already invalidated")
    return coupon.model_copy(update={"status": CouponStatus.invalidated})


def give_back_coupon(coupon: Coupon, amount: Decimal | None = None) -> Coupon:
    """``coupon_unredeem`` (or a full refund): the coupon can be used again; a gift card gets
    ``amount`` back on its balance. An invalidated coupon stays invalidated."""
    if coupon.status is CouponStatus.invalidated:
        if coupon.type == "gift_card" and amount is not None:
            return coupon.model_copy(update={"balance": (coupon.balance or Decimal(0)) + amount})
        return coupon
    if coupon.type == "gift_card" and amount is not None:
        balance = (coupon.balance or Decimal(0)) + amount
        limit = coupon.value if coupon.value is not None else balance
        return coupon.model_copy(
            update={
                "balance": balance,
                "status": CouponStatus.claimed if balance >= limit else CouponStatus.partially_redeemed,
            }
        )
    return coupon.model_copy(update={"status": CouponStatus.claimed})


def unredeem_standalone_coupon(
    coupon: Coupon | None, code: str, customer: str, amount: Decimal | None
) -> Coupon:
    """``coupon_unredeem`` without a transaction: give back what a standalone
    ``coupon_redeem`` spent. A gift card gets ``amount`` back on its balance, never above its
    ``value`` (``over_unredeem``; a card assigned without a value has no ceiling to check); an
    invalidated gift card gets the amount back but stays invalidated (as a refund's give-back).
    Another coupon, used up by its redeem, is claimed again (``amount`` is not for it)."""
    if coupon is None:
        raise Rejected("unknown_coupon", f"coupon {code} does not exist")
    if coupon.customer != customer:
        raise Rejected("coupon_not_owned", f"coupon {code} is not assigned to this customer")
    if coupon.type != "gift_card":
        if amount is not None:
            raise Rejected("not_a_gift_card", f"coupon {code} is not a gift card: it is given back whole")
        if coupon.status is CouponStatus.invalidated:
            raise Rejected("coupon_invalidated", f"coupon {code} is invalidated")
        if coupon.status is not CouponStatus.redeemed:
            raise Rejected(
                "coupon_not_redeemed", f"coupon {code} is {coupon.status.value}: nothing to give back"
            )
        return give_back_coupon(coupon)
    if amount is None:
        raise Rejected("amount_required", f"gift card {code} needs an amount")
    balance = coupon.balance or Decimal(0)
    if coupon.value is not None and balance + amount > coupon.value:
        raise Rejected(
            "over_unredeem",
            f"giving back {amount} to gift card {code} exceeds what was spent: {coupon.value - balance}",
        )
    return give_back_coupon(coupon, amount)
