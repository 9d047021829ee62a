"""The transaction aggregate: an order and everything loyalty did with it.

Plain slotted dataclasses, no I/O and no validation: the rules build and change them with
domain values. Their JSON form (the snapshot carried by status changes and webhooks, which is
also the stored document) is written by hand below; its schema is the contract's
``services.contract.outbound.Transaction``, and tests/unit/test_snapshots.py proves the two
agree, both ways, over drawn transactions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from operator import attrgetter
from typing import Any

import orjson
from pydantic_core import to_jsonable_python

from services.domain.money import format_money, minor_units


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


# Not frozen: the rules change a transaction in place, on a copy (``clone``) of the stored one.
@dataclass(slots=True, kw_only=True)
class Item:
    product_id: str | None = None
    product_name: str | None = None
    product_url: str | None = None
    image_url: str | None = None
    category: str | None = None
    price: Decimal | None = None
    quantity: Decimal = Decimal(1)
    discount: Decimal | None = None
    subtotal: Decimal
    points_rewarded: int = 0
    points_burned: int = 0
    refunded_quantity: Decimal = Decimal(0)

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Item:
        return cls(
            product_id=doc.get("product_id"),
            product_name=doc.get("product_name"),
            product_url=doc.get("product_url"),
            image_url=doc.get("image_url"),
            category=doc.get("category"),
            price=_optional_decimal(doc.get("price")),
            quantity=_decimal(doc.get("quantity", 1)),
            discount=_optional_decimal(doc.get("discount")),
            subtotal=_decimal(doc["subtotal"]),
            points_rewarded=doc.get("points_rewarded", 0),
            points_burned=doc.get("points_burned", 0),
            refunded_quantity=_decimal(doc.get("refunded_quantity", 0)),
        )

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


@dataclass(slots=True)
class CampaignPoints:
    campaign: str
    points: int


@dataclass(slots=True, kw_only=True)
class Transaction:
    program: str
    transaction_id: str
    customer: str | None
    guest: bool = False
    status: Status
    type: IntentType = IntentType.Shop
    currency: str
    # Factor converting ``currency`` amounts into the program currency.
    rate: Decimal = Decimal(1)
    total: Decimal
    refunded: Decimal = Decimal(0)
    # What the purchase earns (base + bonus); credited to the customer as pending or
    # earned, or held until claimed for a guest checkout.
    points_base: int = 0
    points_bonus: int = 0
    campaigns: list[CampaignPoints] = field(default_factory=list)
    points_earned: int = 0
    points_pending: int = 0
    points_burned: int = 0
    # Burned points given back (point_unspend after a reject; point_unburn on refunds).
    points_restored: int = 0
    # Earned points taken back by refunds.
    points_revoked: int = 0
    items: list[Item] = field(default_factory=list)
    coupons: list[str] = field(default_factory=list)
    offers: list[str] = field(default_factory=list)
    coupons_unredeemed: list[str] = field(default_factory=list)
    offers_unredeemed: list[str] = field(default_factory=list)
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
        copy = Transaction(**dict(zip(_TRANSACTION_FIELDS, _transaction_values(self), strict=True)))
        copy.items = [Item(**dict(zip(_ITEM_FIELDS, _item_values(item), strict=True))) for item in self.items]
        copy.campaigns = list(self.campaigns)  # CampaignPoints are never changed, only replaced
        copy.coupons = list(self.coupons)
        copy.offers = list(self.offers)
        copy.coupons_unredeemed = list(self.coupons_unredeemed)
        copy.offers_unredeemed = list(self.offers_unredeemed)
        return copy

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Transaction:
        """The transaction a stored document (``document()``, upgraded to the current
        version) describes; what a field's absence means is its default."""
        return cls(
            program=doc["program"],
            transaction_id=doc["transaction_id"],
            customer=doc["customer"],
            guest=doc.get("guest", False),
            status=Status(doc["status"]),
            type=IntentType(doc.get("type", IntentType.Shop)),
            currency=doc["currency"],
            rate=_decimal(doc.get("rate", 1)),
            total=_decimal(doc["total"]),
            refunded=_decimal(doc.get("refunded", 0)),
            points_base=doc.get("points_base", 0),
            points_bonus=doc.get("points_bonus", 0),
            campaigns=[CampaignPoints(c["campaign"], c["points"]) for c in doc.get("campaigns", ())],
            points_earned=doc.get("points_earned", 0),
            points_pending=doc.get("points_pending", 0),
            points_burned=doc.get("points_burned", 0),
            points_restored=doc.get("points_restored", 0),
            points_revoked=doc.get("points_revoked", 0),
            items=[Item.from_document(item) for item in doc.get("items", ())],
            coupons=list(doc.get("coupons", ())),
            offers=list(doc.get("offers", ())),
            coupons_unredeemed=list(doc.get("coupons_unredeemed", ())),
            offers_unredeemed=list(doc.get("offers_unredeemed", ())),
            store=doc.get("store"),
            store_details=doc.get("store_details"),
            metadata=doc.get("metadata"),
            utm_data=doc.get("utm_data"),
            shares=doc.get("shares"),
            occurred_at=_moment(doc["occurred_at"]),
            created_at=_moment(doc["created_at"]),
            updated_at=_moment(doc["updated_at"]),
            auto_accept_at=_optional_moment(doc.get("auto_accept_at")),
            accepted_at=_optional_moment(doc.get("accepted_at")),
            rejected_at=_optional_moment(doc.get("rejected_at")),
            enriched_at=_optional_moment(doc.get("enriched_at")),
        )

    def touch(self, at: datetime) -> None:
        """``updated_at`` is the latest event time applied, so it does not depend on the
        order parked events were released in."""
        self.updated_at = max(self.updated_at, at)

    def snapshot(self) -> dict[str, Any]:
        """The JSON form carried by status changes and webhooks, and stored: every field, money
        as a decimal string with the currency's minor units (the contract's ``Transaction``,
        ``model_dump(mode="json")``; tests/unit/test_snapshots.py proves them equal)."""
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

    def document(self, snapshot: dict[str, Any] | None = None) -> str:
        """The stored JSON document: the snapshot, which ``from_document`` reads back.
        ``snapshot``: one already taken of this very state (saves taking another)."""
        return orjson.dumps(snapshot or self.snapshot()).decode()


# For copies: every field's value at once (attrgetter reads them in C).
_TRANSACTION_FIELDS = tuple(f.name for f in fields(Transaction))
_transaction_values = attrgetter(*_TRANSACTION_FIELDS)
_ITEM_FIELDS = tuple(f.name for f in fields(Item))
_item_values = attrgetter(*_ITEM_FIELDS)


def _decimal(value: str | int | Decimal) -> Decimal:
    # Stored amounts are decimal strings; str() keeps a number written otherwise exact too.
    return value if isinstance(value, Decimal) else Decimal(value if isinstance(value, str) else str(value))


def _optional_decimal(value: str | int | Decimal | None) -> Decimal | None:
    return None if value is None else _decimal(value)


def _moment(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _optional_moment(value: str | datetime | None) -> datetime | None:
    return None if value is None else _moment(value)


def _jsonable(value: object) -> Any:
    # As the model's serialiser infers a free-form value's type (infinities and NaN as null).
    return None if value is None else to_jsonable_python(value, inf_nan_mode="null")


def benefit_data(txn: Transaction, kind: str, ref: str) -> dict[str, Any]:
    """The data of a coupon or offer webhook about a transaction."""
    return {kind: ref, "transaction_id": txn.transaction_id, "customer": txn.customer}
