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
from pydantic_core import to_jsonable_python

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

    def _snapshot(self, digits: int) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "product_name": self.product_name,
            "product_url": self.product_url,
            "image_url": self.image_url,
            "category": self.category,
            "price": None if self.price is None else format_money(self.price, digits),
            "quantity": str(self.quantity),
            "discount": None if self.discount is None else format_money(self.discount, digits),
            "subtotal": format_money(self.subtotal, digits),
            "points_rewarded": self.points_rewarded,
            "points_burned": self.points_burned,
            "refunded_quantity": str(self.refunded_quantity),
        }


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
        """The JSON form carried by status changes and webhooks: ``model_dump(mode="json")``
        with the currency's minor units, written out field by field, which is cheaper than the
        model's serialiser calling back into Python for every amount.
        tests/unit/test_snapshots.py proves the two equal over drawn transactions."""
        digits = minor_units(self.currency)
        occurred = _jsonable(self.occurred_at)

        def moment(value: datetime | None) -> Any:
            # Moments set by the event that registered the transaction are its very object.
            return occurred if value is self.occurred_at else _jsonable(value)

        return {
            "program": self.program,
            "transaction_id": self.transaction_id,
            "customer": self.customer,
            "guest": self.guest,
            "status": self.status.value,
            "type": self.type.value,
            "currency": self.currency,
            "rate": str(self.rate),
            "total": format_money(self.total, digits),
            "refunded": format_money(self.refunded, digits),
            "points_base": self.points_base,
            "points_bonus": self.points_bonus,
            "campaigns": [{"campaign": c.campaign, "points": c.points} for c in self.campaigns],
            "points_earned": self.points_earned,
            "points_pending": self.points_pending,
            "points_burned": self.points_burned,
            "points_restored": self.points_restored,
            "points_revoked": self.points_revoked,
            "items": [item._snapshot(digits) for item in self.items],
            "coupons": list(self.coupons),
            "offers": list(self.offers),
            "coupons_unredeemed": list(self.coupons_unredeemed),
            "offers_unredeemed": list(self.offers_unredeemed),
            "store": self.store,
            # Free-form values and datetimes: pydantic's own inference, so they come out as
            # the model writes them (decimals as strings, UTC as "Z").
            "store_details": _jsonable(self.store_details),
            "metadata": _jsonable(self.metadata),
            "utm_data": _jsonable(self.utm_data),
            "shares": None if self.shares is None else dict(self.shares),
            "occurred_at": occurred,
            "created_at": moment(self.created_at),
            "updated_at": moment(self.updated_at),
            "auto_accept_at": moment(self.auto_accept_at),
            "accepted_at": moment(self.accepted_at),
            "rejected_at": moment(self.rejected_at),
            "enriched_at": moment(self.enriched_at),
        }

    def document(self) -> str:
        """The stored JSON document (the same form as the snapshot)."""
        return self.model_dump_json(context=self._money_context())


def _jsonable(value: object) -> Any:
    # As the model's serialiser infers a free-form value's type (infinities and NaN as null).
    return None if value is None else to_jsonable_python(value, inf_nan_mode="null")


def benefit_data(txn: Transaction, kind: str, ref: str) -> dict[str, Any]:
    """The data of a coupon or offer webhook about a transaction."""
    return {kind: ref, "transaction_id": txn.transaction_id, "customer": txn.customer}
