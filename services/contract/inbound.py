"""Inbound message shapes (DESIGN.md section 2): Antavo-style event bodies, one model per action.

Amounts are ``Decimal`` and accept JSON numbers or numeric strings (bodies are parsed with
``parse_float=Decimal``, so no amount ever passes through float). Ids accept strings or
numbers. ``schemas/inbound/*.json`` is generated from these models (``make schemas``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from services.domain.catalog import Offer, Product, Store
from services.domain.transaction import IntentType


def _id_text(value: Any) -> Any:
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)
    return value


Id = Annotated[str, BeforeValidator(_id_text), Field(min_length=1, max_length=200)]
Money = Annotated[Decimal, Field(max_digits=18, decimal_places=6, allow_inf_nan=False)]
NonNegativeMoney = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=6, allow_inf_nan=False)]
Points = Annotated[int, Field(ge=0, le=10**12)]
Quantity = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=4, allow_inf_nan=False)]


class _Body(BaseModel):
    # A field the contract does not name is refused (schema_violation, naming the field), so
    # a misspelt field is never silently lost; free attributes go in ``metadata``/``utm_data``.
    model_config = ConfigDict(extra="forbid", frozen=True)


class CheckoutItem(_Body):
    product_id: Id | None = None
    product_name: str | None = None
    product_url: str | None = None
    category: str | None = None
    price: NonNegativeMoney | None = None
    quantity: Quantity = Decimal(1)
    discount: NonNegativeMoney | None = None
    subtotal: NonNegativeMoney | None = None
    points_rewarded: Points | None = None

    @model_validator(mode="after")
    def _subtotal_known(self) -> CheckoutItem:
        if self.subtotal is None and self.price is None:
            raise ValueError("an item needs a subtotal or a price")
        if self.effective_subtotal < 0:
            raise ValueError("the item's discount exceeds price * quantity")
        return self

    @property
    def effective_subtotal(self) -> Decimal:
        if self.subtotal is not None:
            return self.subtotal
        assert self.price is not None
        return self.price * self.quantity - (self.discount or Decimal(0))


class CheckoutData(_Body):
    transaction_id: Id
    total: NonNegativeMoney
    currency: Annotated[str, Field(min_length=3, max_length=3)] | None = None
    points_burned: Points = 0
    points_rewarded: Points | None = None
    items: list[CheckoutItem] = Field(default_factory=list, max_length=1000)
    coupons: list[Id] = Field(default_factory=list, max_length=100)
    offers: list[Id] = Field(default_factory=list, max_length=100)
    store: Id | None = None
    auto_accept: AwareDatetime | None = None
    type: IntentType = IntentType.Shop
    metadata: dict[str, Any] | None = None
    utm_data: dict[str, Any] | None = None


class TransactionRef(_Body):
    transaction_id: Id


class _Event(_Body):
    event_id: Id | None = None
    program: Id | None = None
    occurred_at: AwareDatetime | None = None


class CheckoutEvent(_Event):
    action: Literal["checkout"]
    customer: Id | None = None
    guest: bool = False
    data: CheckoutData

    @model_validator(mode="after")
    def _customer_or_guest(self) -> CheckoutEvent:
        if self.guest and self.customer is not None:
            raise ValueError("a guest checkout carries no customer")
        if not self.guest and self.customer is None:
            raise ValueError("customer is required unless guest is true")
        return self


class CheckoutClaimEvent(_Event):
    action: Literal["checkout_claim"]
    customer: Id
    data: TransactionRef


class CouponRedeemData(_Body):
    code: Id
    transaction_id: Id | None = None
    # Gift cards: how much of the balance is spent. Other coupons are used up whole.
    amount: Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=6, allow_inf_nan=False)] | None = (
        None
    )


class CouponRedeemEvent(_Event):
    action: Literal["coupon_redeem"]
    customer: Id
    data: CouponRedeemData


CheckoutsTopicEvent = Annotated[
    CheckoutEvent | CheckoutClaimEvent | CouponRedeemEvent, Field(discriminator="action")
]


class CheckoutUpdateData(_Body):
    """What ``checkout_update`` replaces: total, items, burn, partner points, auto-accept date."""

    transaction_id: Id
    total: NonNegativeMoney
    currency: Annotated[str, Field(min_length=3, max_length=3)] | None = None
    points_burned: Points | None = None
    points_rewarded: Points | None = None
    items: list[CheckoutItem] = Field(default_factory=list, max_length=1000)
    store: Id | None = None
    auto_accept: AwareDatetime | None = None
    metadata: dict[str, Any] | None = None


class _LifecycleEvent(_Event):
    # Optional: a guest checkout's lifecycle events carry no customer.
    customer: Id | None = None


class CheckoutUpdateEvent(_LifecycleEvent):
    action: Literal["checkout_update"]
    data: CheckoutUpdateData


class CheckoutAcceptEvent(_LifecycleEvent):
    action: Literal["checkout_accept"]
    data: TransactionRef


class CheckoutRejectEvent(_LifecycleEvent):
    action: Literal["checkout_reject"]
    data: TransactionRef


class PointUnspendEvent(_LifecycleEvent):
    action: Literal["point_unspend"]
    data: TransactionRef


LifecycleTopicEvent = Annotated[
    CheckoutUpdateEvent | CheckoutAcceptEvent | CheckoutRejectEvent | PointUnspendEvent,
    Field(discriminator="action"),
]


PositiveMoney = Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=6, allow_inf_nan=False)]


class RefundData(_Body):
    transaction_id: Id
    # Offers redeemed with the purchase that this refund gives back (Antavo: offer_unredeem).
    offers: list[Id] = Field(default_factory=list, max_length=100)


class PartialRefundData(RefundData):
    amount: PositiveMoney


class RefundItemData(RefundData):
    product_id: Id
    quantity: Quantity = Decimal(1)
    # The amount refunded for these units; default: the item's subtotal pro rata.
    subtotal: NonNegativeMoney | None = None


class RefundEvent(_LifecycleEvent):
    action: Literal["refund"]
    data: RefundData


class PartialRefundEvent(_LifecycleEvent):
    action: Literal["partial_refund"]
    data: PartialRefundData


class RefundItemEvent(_LifecycleEvent):
    action: Literal["refund_item"]
    data: RefundItemData


class OfferUnredeemData(_Body):
    transaction_id: Id
    offers: list[Id] = Field(min_length=1, max_length=100)


class CouponUnredeemData(_Body):
    # Absent: a standalone unredeem, giving back what a ``coupon_redeem`` without a registered
    # transaction spent (the customer is then required).
    transaction_id: Id | None = None
    code: Id
    # Gift cards: how much goes back on the balance (required for a standalone one).
    amount: PositiveMoney | None = None


class OfferUnredeemEvent(_LifecycleEvent):
    action: Literal["offer_unredeem"]
    data: OfferUnredeemData


class CouponUnredeemEvent(_LifecycleEvent):
    action: Literal["coupon_unredeem"]
    data: CouponUnredeemData

    @model_validator(mode="after")
    def _customer_when_standalone(self) -> CouponUnredeemEvent:
        if self.data.transaction_id is None and self.customer is None:
            raise ValueError("customer is required when data.transaction_id is absent")
        return self


RefundsTopicEvent = Annotated[
    RefundEvent | PartialRefundEvent | RefundItemEvent | OfferUnredeemEvent | CouponUnredeemEvent,
    Field(discriminator="action"),
]


class ProductRef(_Body):
    product_id: Id


class StoreRef(_Body):
    store_id: Id


class CouponAssignData(_Body):
    code: Id
    customer: Id
    type: Literal["amount", "percent", "gift_card"] = "amount"
    value: NonNegativeMoney | None = None
    balance: NonNegativeMoney | None = None
    currency: Annotated[str, Field(min_length=3, max_length=3)] | None = None
    expires_at: AwareDatetime | None = None
    pool: str | None = None


class ProductUpsertEvent(_Event):
    action: Literal["product_upsert"]
    data: Product


class ProductDeleteEvent(_Event):
    action: Literal["product_delete"]
    data: ProductRef


class StoreUpsertEvent(_Event):
    action: Literal["store_upsert"]
    data: Store


class StoreDeleteEvent(_Event):
    action: Literal["store_delete"]
    data: StoreRef


class OfferUpsertEvent(_Event):
    action: Literal["offer_upsert"]
    data: Offer


class CouponAssignEvent(_Event):
    action: Literal["coupon_assign"]
    data: CouponAssignData

    @model_validator(mode="before")
    @classmethod
    def _customer_from_envelope(cls, body: Any) -> Any:
        """The customer may come in ``data`` or, Antavo style, on the envelope."""
        if isinstance(body, dict) and isinstance(body.get("data"), dict) and "customer" in body:
            envelope = {k: v for k, v in body.items() if k != "customer"}
            body = {**envelope, "data": {"customer": body["customer"], **body["data"]}}
        return body


class CouponInvalidateData(_Body):
    code: Id
    reason: Annotated[str, Field(max_length=1000)] | None = None


class CouponInvalidateEvent(_Event):
    """Withdraws a coupon that was not used up: it can no longer be redeemed (Antavo:
    benefits a refund does not revoke are invalidated by a separate event). Keyed by code."""

    action: Literal["coupon_invalidate"]
    data: CouponInvalidateData


CatalogTopicEvent = Annotated[
    ProductUpsertEvent
    | ProductDeleteEvent
    | StoreUpsertEvent
    | StoreDeleteEvent
    | OfferUpsertEvent
    | CouponAssignEvent
    | CouponInvalidateEvent,
    Field(discriminator="action"),
]


# Actions the engine sends itself, never a producer: their results are marked internal.
INTERNAL_ACTIONS = frozenset({"enrich", "auto_expire"})


class EnrichData(_Body):
    transaction_id: Id
    product_ids: list[Id] = Field(default_factory=list, max_length=1000)
    store: Id | None = None


class EnrichEvent(_LifecycleEvent):
    """Internal: a transaction registration read back from ``loyalty.transaction-status``."""

    action: Literal["enrich"]
    data: EnrichData


class AutoExpireEvent(_LifecycleEvent):
    """Internal, never on a topic: the pending-period timer's accept or reject of a due
    transaction. ``occurred_at`` is the due time it was claimed for."""

    action: Literal["auto_expire"]
    data: TransactionRef
