"""Read API shapes (DESIGN.md section 7): query parameters, request and response bodies.
``schemas/openapi.json`` is generated from the app that uses them (``make schemas``).

Money is a decimal string, points are integers, times are ISO 8601 with a zone."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from services.contract.inbound import CheckoutItem, Id, NonNegativeMoney, Points
from services.domain.transaction import IntentType, Transaction

DEFAULT_PAGE = 50
MAX_PAGE = 500

# Every status a registered transaction can have (drafts are internal and never listed).
ListedStatus = Literal["pending", "accepted", "rejected", "partially_refunded", "refunded"]


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class TransactionFilters(BaseModel):
    """Query parameters of the transaction list (FlipGive's intents index). An unknown
    parameter is an error, so a misspelt filter never silently returns everything."""

    model_config = ConfigDict(extra="forbid")

    status: list[ListedStatus] = Field(default_factory=list, description="Repeat to match any of several.")
    type: list[IntentType] = Field(default_factory=list, description="Repeat to match any of several.")
    created_at_gt: AwareDatetime | None = Field(None, description="ISO 8601 with a zone, or epoch seconds.")
    created_at_lt: AwareDatetime | None = None
    accepted_at_gt: AwareDatetime | None = None
    accepted_at_lt: AwareDatetime | None = None
    order_by: Literal["created_at", "accepted_at"] = "created_at"
    order: Annotated[Literal["asc", "desc"], BeforeValidator(_lower)] = Field(
        "desc", description="asc or desc (any case). Transactions never accepted sort last either way."
    )
    limit: Annotated[int, Field(ge=1), AfterValidator(lambda v: min(v, MAX_PAGE))] = Field(
        DEFAULT_PAGE, description=f"Page size; larger values are capped at {MAX_PAGE}."
    )
    offset: int = Field(0, ge=0, le=1_000_000)


class PageLinks(BaseModel):
    self: str
    next: str | None = Field(description="The next page, or null on the last page.")


class PageMeta(BaseModel):
    limit: int = Field(description="The page size used (the requested limit, capped).")
    offset: int
    count: int = Field(description="Transactions on this page.")


class TransactionPage(BaseModel):
    data: list[Transaction]
    links: PageLinks
    meta: PageMeta


class StatusChange(BaseModel):
    from_status: str | None
    to_status: str
    action: str
    event_key: str
    at: datetime


class LedgerEntryView(BaseModel):
    """One movement of a customer's points; the four deltas sum to the balances."""

    customer_id: str
    movement: str
    points: int
    score: int
    spendable: int
    pending: int
    spent: int
    event_key: str
    at: datetime


class TransactionDetail(BaseModel):
    transaction: Transaction
    status_history: list[StatusChange]
    points_ledger: list[LedgerEntryView]


class TransactionDetailResponse(BaseModel):
    data: TransactionDetail


class Balances(BaseModel):
    score: int
    spendable: int
    pending: int
    spent: int


class PurchaseAttributes(BaseModel):
    """Accepted purchases only, in the program currency."""

    total: Decimal
    count: int
    items: Decimal
    avg_total: Decimal | None
    avg_items: Decimal | None
    first_date: datetime | None
    last_date: datetime | None


class BurnRateView(BaseModel):
    currency: str
    amount: int = Field(description="Currency units that `points` points buy (the rate).")
    points: int
    converted_amount: int = Field(description="Whole currency units the spendable points buy.")
    unconverted_points: int = Field(description="Spendable points left after converted_amount.")


class CustomerView(BaseModel):
    customer_id: str
    balances: Balances
    purchase: PurchaseAttributes
    burn_rates: list[BurnRateView]


class CustomerResponse(BaseModel):
    data: CustomerView


class PointsPreviewRequest(BaseModel):
    """A cart, shaped as a checkout's ``data`` (extra checkout attributes are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    total: NonNegativeMoney
    currency: Annotated[str, Field(min_length=3, max_length=3)] | None = None
    items: list[CheckoutItem] = Field(default_factory=list, max_length=1000)
    store: Id | None = None
    type: IntentType = IntentType.Shop
    points_rewarded: Points | None = None
    occurred_at: AwareDatetime | None = Field(
        None, description="When the purchase would happen (campaign dates); now by default."
    )


class PurchasePoints(BaseModel):
    base: int
    bonus: int
    points: int


class CampaignPointsView(BaseModel):
    campaign: str
    points: int


class ItemPoints(BaseModel):
    product_id: str | None
    category: str | None
    points: int


class PointsPreview(BaseModel):
    purchase: PurchasePoints
    campaigns: list[CampaignPointsView]
    items: list[ItemPoints]


class PointsPreviewResponse(BaseModel):
    data: PointsPreview


class FieldError(BaseModel):
    location: str = Field(description="query, path, body or header")
    field: str
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    fields: list[FieldError] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    error: ErrorBody
