"""The transaction aggregate: an order and everything loyalty did with it.

A pydantic model so that it is at once the domain object, the stored document and the
snapshot carried by status-change events and webhooks. No I/O here.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, PlainSerializer, SerializationInfo

from services.domain.money import DEFAULT_MINOR_UNITS, format_money, minor_units


def _money_json(value: Decimal, info: SerializationInfo) -> str:
    context = info.context or {}
    return format_money(value, context.get("minor_units", DEFAULT_MINOR_UNITS))


# An amount in the transaction's currency: a plain decimal string with the currency's minor
# units in JSON (the transaction passes its currency's digits as serialisation context).
Money = Annotated[Decimal, PlainSerializer(_money_json, return_type=str, when_used="json")]


class Status(StrEnum):
    draft = "draft"
    pending = "pending"
    accepted = "accepted"
    rejected = "rejected"
    partially_refunded = "partially_refunded"
    refunded = "refunded"


class IntentType(StrEnum):
    """FlipGive intent types."""

    Shop = "Shop"
    Buy = "Buy"
    Reload = "Reload"
    Donation = "Donation"
    Transfer = "Transfer"
    EarlyWithdrawalFee = "EarlyWithdrawalFee"


class Item(BaseModel):
    product_id: str | None = None
    product_name: str | None = None
    product_url: str | None = None
    image_url: str | None = None
    category: str | None = None
    price: Money | None = None
    quantity: Decimal = Decimal(1)
    discount: Money | None = None
    subtotal: Money
    points_rewarded: int = 0
    points_burned: int = 0
    refunded_quantity: Decimal = Decimal(0)


class CampaignPoints(BaseModel):
    campaign: str
    points: int


class Transaction(BaseModel):
    program: str
    transaction_id: str
    customer: str | None
    guest: bool = False
    status: Status
    type: IntentType = IntentType.Shop
    currency: str
    # Factor converting ``currency`` amounts into the program currency.
    rate: Decimal = Decimal(1)
    total: Money
    refunded: Money = Decimal(0)
    # What the purchase earns (base + bonus); credited to the customer as pending or
    # earned, or held until claimed for a guest checkout.
    points_base: int = 0
    points_bonus: int = 0
    campaigns: list[CampaignPoints] = Field(default_factory=list)
    points_earned: int = 0
    points_pending: int = 0
    points_burned: int = 0
    # Burned points given back (point_unspend after a reject; point_unburn on refunds).
    points_restored: int = 0
    # Earned points taken back by refunds.
    points_revoked: int = 0
    items: list[Item] = Field(default_factory=list)
    coupons: list[str] = Field(default_factory=list)
    offers: list[str] = Field(default_factory=list)
    coupons_unredeemed: list[str] = Field(default_factory=list)
    offers_unredeemed: list[str] = Field(default_factory=list)
    store: str | None = None
    store_details: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    utm_data: dict[str, Any] | None = None
    shares: dict[str, int] | None = None
    occurred_at: datetime
    created_at: datetime
    updated_at: datetime
    auto_accept_at: datetime | None = None
    accepted_at: datetime | None = None
    rejected_at: datetime | None = None
    enriched_at: datetime | None = None

    @property
    def points_to_earn(self) -> int:
        return self.points_base + self.points_bonus

    @property
    def item_quantity(self) -> Decimal:
        return sum((item.quantity for item in self.items), Decimal(0))

    @property
    def converted_total(self) -> Decimal:
        return self.total * self.rate

    @classmethod
    def draft(cls, program: str, transaction_id: str, at: datetime) -> Transaction:
        """A placeholder for a transaction whose checkout has not arrived yet (as Antavo's
        draft transactions): events for it park until the checkout fills it in. It belongs
        to nobody yet: whoever the first event names (a claimer?) may not be its owner."""
        return cls(
            program=program,
            transaction_id=transaction_id,
            customer=None,
            status=Status.draft,
            currency="",
            total=Decimal(0),
            occurred_at=at,
            created_at=at,
            updated_at=at,
        )

    def clone(self) -> Transaction:
        """A copy to change independently: lists and items are copied; every other value is
        immutable or replaced whole by the rules (metadata, shares, store details)."""
        copy = self.model_copy()
        fields = copy.__dict__
        fields["items"] = [item.model_copy() for item in self.items]
        for name in ("campaigns", "coupons", "offers", "coupons_unredeemed", "offers_unredeemed"):
            fields[name] = list(fields[name])
        return copy

    def touch(self, at: datetime) -> None:
        """``updated_at`` is the latest event time applied, so it does not depend on the
        order parked events were released in."""
        self.updated_at = max(self.updated_at, at)

    def _money_context(self) -> dict[str, int]:
        return {"minor_units": minor_units(self.currency)}

    def snapshot(self) -> dict[str, Any]:
        """The JSON form carried by status changes and webhooks."""
        return self.model_dump(mode="json", context=self._money_context())

    def document(self) -> str:
        """The stored JSON document (the same form as the snapshot)."""
        return self.model_dump_json(context=self._money_context())


def benefit_data(txn: Transaction, kind: str, ref: str) -> dict[str, Any]:
    """The data of a coupon or offer webhook about a transaction."""
    return {kind: ref, "transaction_id": txn.transaction_id, "customer": txn.customer}
