"""Read API shapes (DESIGN.md section 7): query parameters, request and response bodies.
``schemas/openapi.json`` is generated from the app that uses them (``make schemas``).

Money is a plain decimal string with its currency's minor units (``"100.00"``, JPY ``"100"``,
KWD ``"1.500"``; services/domain/money.py), points are integers, times are ISO 8601 with a zone."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from services.contract.inbound import CheckoutItem, Id, NonNegativeMoney, Points
from services.contract.outbound import Transaction
from services.domain.catalog import CouponStatus
from services.domain.transaction import IntentType

DEFAULT_PAGE = 50
MAX_PAGE = 500
# FlipGive's intents index allows pages of up to 5000 with ``page[limit]``.
MAX_FLIPGIVE_PAGE = 5000
MAX_OFFSET = 1_000_000

# A money value in the read API: a plain decimal string with the currency's minor units.
MoneyText = Annotated[
    str,
    Field(
        pattern=r"^-?[0-9]+(\.[0-9]+)?$",
        examples=["100.00"],
        description='A decimal string with the currency\'s minor units (JPY "100", KWD "1.500").',
    ),
]

# FlipGive's spelling of a list parameter -> ours. Either is accepted; both at once must agree.
FLIPGIVE_SPELLINGS = {
    "intent_type": "type",
    "supported_at_gt": "accepted_at_gt",
    "supported_at_lt": "accepted_at_lt",
    "page_limit": "limit",
    "page_offset": "offset",
}

# Every status a registered transaction can have (drafts are internal and never listed).
ListedStatus = Literal["pending", "accepted", "rejected", "partially_refunded", "refunded"]


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class TransactionFilters(BaseModel):
    """Query parameters of the transaction list (FlipGive's intents index), in our spelling or
    FlipGive's (``intent_type[]``, ``supported_at_gt/_lt``, ``page[limit]``, ``page[offset]``).
    After validation the FlipGive values are in our fields (``type``, ``accepted_at_gt/_lt``,
    ``limit``, ``offset``), which are the ones to read. Both spellings of one parameter with
    different values are an error naming FlipGive's. An unknown parameter is an error, so a
    misspelt filter never silently returns everything."""

    model_config = ConfigDict(extra="forbid")

    status: list[ListedStatus] = Field(default_factory=list, description="Repeat to match any of several.")
    type: list[IntentType] = Field(default_factory=list, description="Repeat to match any of several.")
    intent_type: list[IntentType] = Field(
        default_factory=list, alias="intent_type[]", description="FlipGive's spelling of `type`."
    )
    supported: bool | None = Field(
        None,
        description="FlipGive: true lists transactions that became financial (were accepted), whatever "
        "their status now (refunds included); false lists those never accepted (pending, rejected).",
    )
    created_at_gt: AwareDatetime | None = Field(None, description="ISO 8601 with a zone, or epoch seconds.")
    created_at_lt: AwareDatetime | None = None
    accepted_at_gt: AwareDatetime | None = None
    accepted_at_lt: AwareDatetime | None = None
    supported_at_gt: AwareDatetime | None = Field(
        None, description="FlipGive's spelling of `accepted_at_gt`."
    )
    supported_at_lt: AwareDatetime | None = Field(
        None, description="FlipGive's spelling of `accepted_at_lt`."
    )
    order_by: Literal["created_at", "accepted_at"] = "created_at"
    order: Annotated[Literal["asc", "desc"], BeforeValidator(_lower)] = Field(
        "desc", description="asc or desc (any case). Transactions never accepted sort last either way."
    )
    limit: int = Field(DEFAULT_PAGE, ge=1, description=f"Page size; larger values are capped at {MAX_PAGE}.")
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    page_limit: int | None = Field(
        None,
        ge=1,
        alias="page[limit]",
        description=f"FlipGive's spelling of `limit`; larger values are capped at {MAX_FLIPGIVE_PAGE}.",
    )
    page_offset: int | None = Field(
        None, ge=0, le=MAX_OFFSET, alias="page[offset]", description="FlipGive's spelling of `offset`."
    )

    @model_validator(mode="after")
    def _one_spelling(self) -> Self:
        given = set(self.model_fields_set)
        conflicts: list[InitErrorDetails] = []
        for theirs, ours in FLIPGIVE_SPELLINGS.items():
            if theirs not in given:
                continue
            value = getattr(self, theirs)
            if ours in given and not _same(getattr(self, ours), value):
                alias = type(self).model_fields[theirs].alias or theirs
                conflicts.append(
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "conflicting_spellings",
                            "{theirs} and {ours} are the same parameter and differ; send one of them",
                            {"theirs": alias, "ours": ours},
                        ),
                        loc=(alias,),
                        input=value,
                    )
                )
            else:
                setattr(self, ours, value)
        if conflicts:
            raise ValidationError.from_exception_data(type(self).__name__, conflicts)
        self.limit = min(self.limit, MAX_FLIPGIVE_PAGE if "page_limit" in given else MAX_PAGE)
        return self

    @property
    def flipgive_pages(self) -> bool:
        """Whether the client paginates in FlipGive's spelling (the next link keeps it)."""
        return bool({"page_limit", "page_offset"} & self.model_fields_set)


def _same(ours: Any, theirs: Any) -> bool:
    if isinstance(ours, list) and isinstance(theirs, list):
        return set(ours) == set(theirs)
    return bool(ours == theirs)


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

    total: MoneyText
    count: int
    items: Decimal
    avg_total: MoneyText | None = Field(description="Rounded to the currency's minor unit.")
    avg_items: Decimal | None
    first_date: datetime | None
    last_date: datetime | None


class BurnRateView(BaseModel):
    currency: str
    amount: MoneyText = Field(description="Currency units that `points` points buy (the rate).")
    points: int
    converted_amount: MoneyText = Field(description="Whole currency units the spendable points buy.")
    unconverted_points: int = Field(description="Spendable points left after converted_amount.")


class CustomerView(BaseModel):
    customer_id: str
    balances: Balances
    purchase: PurchaseAttributes
    burn_rates: list[BurnRateView]


class CustomerResponse(BaseModel):
    data: CustomerView


# The statuses a customer's coupon list shows unless asked for others: the usable ones.
USABLE_COUPONS = (CouponStatus.claimed, CouponStatus.partially_redeemed)


class CouponFilters(BaseModel):
    """Query parameters of a customer's coupons (Antavo's Display API)."""

    model_config = ConfigDict(extra="forbid")

    status: list[CouponStatus] = Field(
        default_factory=list,
        description="Repeat to match any of several; claimed and partially_redeemed when absent.",
    )


class CouponView(BaseModel):
    """A coupon assigned to the customer, as Antavo's Display API shows it."""

    code: str
    status: CouponStatus
    type: Literal["amount", "percent", "gift_card"]
    value: str | None = Field(
        description="Money (amount, gift card: its face value) in `currency`; a percent coupon's percentage."
    )
    balance: MoneyText | None = Field(description="Gift cards: what is left to spend.")
    currency: str | None = Field(
        description="The currency of value and balance: the coupon's, else the program's. A percent "
        "coupon shows only its own, if it has one."
    )
    expires_at: datetime | None = Field(
        description="An expired coupon is still listed, with its stored status; checkout refuses it."
    )
    pool: str | None
    created_at: datetime | None = Field(description="When the coupon was assigned to the customer.")


class CouponList(BaseModel):
    data: list[CouponView]


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
