"""Reference data from ``loyalty.catalog``: products, stores, offers and the coupons assigned
to customers. Plain values; the catalog changes never rewrite transactions already registered
(enrichment copies what it uses into the transaction)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.domain.effects import Rejected


class _Entity(BaseModel):
    # Producers may carry more attributes; they are kept with the entity.
    model_config = ConfigDict(extra="allow")


class Product(_Entity):
    product_id: str
    name: str | None = None
    category: str | None = None
    url: str | None = None
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

    def usable_at(self, at: datetime) -> bool:
        return self.status is not CouponStatus.redeemed and (self.expires_at is None or at < self.expires_at)


CatalogKind = Literal["product", "store", "offer"]


def assign_coupon(existing: Coupon | None, coupon: Coupon) -> Coupon:
    """A coupon code belongs to one customer; assigning it again to the same customer
    replaces its terms (a new pool or expiry) but never revives a redeemed coupon."""
    if existing is not None and existing.customer != coupon.customer:
        raise Rejected("coupon_taken", f"coupon {coupon.code} is assigned to another customer")
    if existing is not None and existing.status is CouponStatus.redeemed:
        raise Rejected("coupon_redeemed", f"coupon {coupon.code} is already redeemed")
    return coupon.model_copy(update={"status": existing.status if existing else CouponStatus.claimed})
