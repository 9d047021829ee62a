"""Outbound message shapes (DESIGN.md section 3). ``schemas/outbound/*.json`` and
``schemas/asyncapi.json`` are generated from these models (``make schemas``). Money is a decimal
string with the currency's minor units; points are integers.

The messages are built from plain dicts the domain already serialised (the transaction
snapshot, each webhook's ``data``), so at run time those fields stay ``dict[str, Any]`` and
nothing is validated twice. Their exact shapes are the schema-only models below
(:class:`TransactionSnapshot`, one data model per webhook type in :data:`WEBHOOK_DATA`,
one message model per type in :data:`WEBHOOK_MESSAGES`); ``tests/unit/test_outbound_schemas.py``
checks that the messages the domain really produces match them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Union, cast, get_args
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    SerializationInfo,
    create_model,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema
from typing_extensions import TypedDict

from services.domain.catalog import CouponStatus
from services.domain.money import DEFAULT_MINOR_UNITS, format_money
from services.domain.transaction import IntentType, Status

WebhookType = Literal[
    "transaction.created",
    "transaction.updated",
    "transaction.accepted",
    "transaction.rejected",
    "transaction.partially_refunded",
    "transaction.refunded",
    "transaction.claimed",
    "transaction.enriched",
    "points.earned",
    "points.pending",
    "points.burned",
    "points.revoked",
    "points.restored",
    "coupon.redeemed",
    "coupon.unredeemed",
    "coupon.invalidated",
    "offer.redeemed",
    "offer.unredeemed",
]

Outcome = Literal["applied", "duplicate", "parked", "rejected"]


class _SchemaOf:
    """Annotation giving a field that stays a plain ``dict`` at run time (validated as a dict,
    serialised as it is) the JSON schema of ``model``."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return handler(self.model.__pydantic_core_schema__)


def _money_json(value: Decimal, info: SerializationInfo) -> str:
    context = info.context or {}
    return format_money(value, context.get("minor_units", DEFAULT_MINOR_UNITS))


# An amount in the transaction's currency: a plain decimal string with the currency's minor
# units in JSON (serialised with the currency's digits as context, ``minor_units``).
Money = Annotated[Decimal, PlainSerializer(_money_json, return_type=str, when_used="json")]


# The JSON form of the transaction aggregate (``services.domain.transaction``), which writes it
# by hand: schema only, and the reference tests/unit/test_snapshots.py holds that form to.
# Without docstrings, as the published schemas have no descriptions for them.
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
    rate: Decimal = Decimal(1)
    total: Money
    refunded: Money = Decimal(0)
    points_base: int = 0
    points_bonus: int = 0
    campaigns: list[CampaignPoints] = Field(default_factory=list)
    points_earned: int = 0
    points_pending: int = 0
    points_burned: int = 0
    points_restored: int = 0
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


class StoreDetails(TypedDict, total=False):
    """The store's catalog details copied by enrichment (only those the catalog has)."""

    name: str
    address: str
    city: str
    country: str
    latitude: Annotated[Decimal, Field(description="Decimal string.")]
    longitude: Annotated[Decimal, Field(description="Decimal string.")]


class Shares(BaseModel):
    """FlipGive-style revenue shares of the total, in the currency's minor units (cents); they
    sum exactly to the total."""

    model_config = ConfigDict(extra="forbid")

    campaign: int
    partner: int
    platform: int
    merchant: int


class TransactionSnapshot(Transaction):
    """The transaction snapshot carried by ``loyalty.transaction-status`` and the
    ``transaction.*`` webhooks: ``Transaction.snapshot()``, every field of the transaction
    aggregate, always present. Money fields (``total``, ``refunded``, items' ``price``,
    ``discount``, ``subtotal``) are decimal strings with the currency's minor units;
    quantities and ``rate`` are decimal strings. Schema only: never instantiated."""

    model_config = ConfigDict(extra="forbid")

    # What enrichment fills in: plain dicts on the aggregate, typed here.
    store_details: StoreDetails | None = None  # type: ignore[assignment]
    shares: Shares | None = None  # type: ignore[assignment]


class Cause(BaseModel):
    event_id: str
    action: str


class TransactionStatusMessage(BaseModel):
    """``loyalty.transaction-status``, keyed by transaction id."""

    program: str
    transaction_id: str
    customer: str | None
    from_status: Status | None
    to_status: Status
    at: datetime
    cause: Cause
    transaction: Annotated[dict[str, Any], _SchemaOf(TransactionSnapshot)] = Field(
        description="The transaction snapshot after the change."
    )


class WebhookMessage(BaseModel):
    """``loyalty.webhooks``, keyed by customer id (transaction id for an unclaimed guest
    checkout); headers ``webhook-type`` and, when the program has a secret,
    ``signature: sha256=<hex HMAC-SHA256 of the value bytes>``."""

    id: str
    type: WebhookType
    program: str
    occurred_at: datetime
    data: dict[str, Any]


class ResultError(BaseModel):
    code: str
    message: str


class PointsEffects(BaseModel):
    points_earned: int = 0
    points_pending: int = 0
    points_burned: int = 0
    points_revoked: int = 0
    points_restored: int = 0


class EventResultMessage(BaseModel):
    """``loyalty.event-results``, keyed by event id: the asynchronous API response."""

    event_id: str
    program: str
    action: str | None
    transaction_id: str | None
    outcome: Outcome
    error: ResultError | None
    effects: PointsEffects
    internal: bool = Field(
        default=False,
        description="True for the engine's own actions (the pending timer's `auto_expire`, "
        "enrichment's `enrich`), which no producer sent; also the header `internal: true`.",
    )


DLQ_HEADERS = ("error-code", "error-message", "source-topic", "source-partition", "source-offset")


# --- The ``data`` of each webhook type (schema only; the domain builds plain dicts) ---------


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TransactionData(_Data):
    """``transaction.*``: the transaction after the change."""

    transaction: TransactionSnapshot


class Balances(_Data):
    """The customer's balances after the movement."""

    score: int
    spendable: int
    pending: int
    spent: int


class PointsData(_Data):
    """``points.*``: points moved on the customer's ledger by a transaction."""

    customer: str
    transaction_id: str
    points: int = Field(description="The points moved (positive).")
    balances: Balances
    negative_spendable: bool = Field(description="Whether spendable is below zero after the movement.")


class OfferData(_Data):
    """``offer.redeemed`` / ``offer.unredeemed``: an offer redeemed with a transaction, or given
    back. ``customer`` is null for a guest checkout not claimed yet."""

    offer: str
    transaction_id: str
    customer: str | None


class CouponData(_Data):
    """``coupon.redeemed`` with a checkout, ``coupon.unredeemed``: a coupon redeemed with a
    transaction, or given back. ``customer`` is null for a guest checkout not claimed yet."""

    coupon: str
    transaction_id: str
    customer: str | None


class CouponRedeemedData(_Data):
    """``coupon.redeemed`` by a ``coupon_redeem`` event: ``amount`` spent of a gift card and the
    ``balance`` left (null for other coupons), and the coupon's status after it."""

    coupon: str
    transaction_id: str | None
    customer: str
    amount: Money | None
    balance: Money | None
    status: CouponStatus


class CouponUnredeemedData(_Data):
    """``coupon.unredeemed`` by a ``coupon_unredeem`` without a transaction (giving back a
    standalone ``coupon_redeem``): ``amount`` given back to a gift card and its ``balance``
    after it (null for other coupons), and the coupon's status after it."""

    coupon: str
    transaction_id: None
    customer: str
    amount: Money | None
    balance: Money | None
    status: CouponStatus


class CouponInvalidatedData(_Data):
    """``coupon.invalidated``: a coupon withdrawn by the program (``coupon_invalidate``)."""

    coupon: str
    customer: str
    status: Literal["invalidated"]
    reason: str | None


# The families of WebhookType, derived from it so the two lists cannot drift apart.
_TRANSACTION_TYPES = tuple(t for t in get_args(WebhookType) if t.startswith("transaction."))
_POINTS_TYPES = tuple(t for t in get_args(WebhookType) if t.startswith("points."))

WEBHOOK_DATA: dict[str, Any] = {
    **dict.fromkeys(_TRANSACTION_TYPES, TransactionData),
    **dict.fromkeys(_POINTS_TYPES, PointsData),
    "coupon.redeemed": CouponData | CouponRedeemedData,
    "coupon.unredeemed": CouponData | CouponUnredeemedData,
    "coupon.invalidated": CouponInvalidatedData,
    "offer.redeemed": OfferData,
    "offer.unredeemed": OfferData,
}
"""The type of each webhook type's ``data``."""


def _webhook_model(kind: str) -> type[BaseModel]:
    name = "".join(part.capitalize() for part in kind.replace(".", "_").split("_")) + "Webhook"
    return create_model(
        name,
        __config__=ConfigDict(extra="forbid"),
        __doc__=f"A `loyalty.webhooks` message of type `{kind}` (header `webhook-type: {kind}`).",
        id=(UUID, Field(description="Unique per webhook; the same on a redelivery.")),
        type=(cast(Any, Literal)[kind], ...),
        program=(str, ...),
        occurred_at=(datetime, ...),
        data=(WEBHOOK_DATA[kind], ...),
    )


WEBHOOK_MESSAGES: dict[str, type[BaseModel]] = {kind: _webhook_model(kind) for kind in get_args(WebhookType)}
"""The full ``loyalty.webhooks`` message of each webhook type (schema only)."""

AnyWebhookMessage: Any = Annotated[
    cast(Any, Union)[tuple(WEBHOOK_MESSAGES.values())], Field(discriminator="type")
]
"""Any ``loyalty.webhooks`` message: one of :data:`WEBHOOK_MESSAGES` by ``type``."""
