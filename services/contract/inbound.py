"""Inbound message shapes (DESIGN.md section 2): Antavo-style event bodies, one model per action.

Amounts are ``Decimal`` and accept JSON numbers or numeric strings (bodies are parsed with
``parse_float=Decimal``, so no amount ever passes through float). Ids accept strings or
numbers. ``schemas/inbound/*.json`` is generated from these models (``make schemas``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal, cast

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    GetPydanticSchema,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticKnownError, SchemaValidator, core_schema
from pydantic_core.core_schema import ErrorType

from services.contract.free_form import FreeForm
from services.domain.catalog import Offer, Product, Store
from services.domain.transaction import IntentType

_ID_MAX_LENGTH = 200
_TEXT = SchemaValidator(core_schema.str_schema())


def _id(value: Any) -> str:
    """A string, or an int or Decimal (never a bool) as its ``str()``, of 1 to 200 characters.

    One Python call per id: a ``BeforeValidator`` with ``Field(min_length, max_length)`` cost
    three (after a validator, pydantic checks lengths in Python), a fifth of a checkout's
    validation. The errors are theirs, word for word (the DLQ's message is built from them).
    """
    text: str
    if type(value) is str:
        text = value
    elif isinstance(value, int | Decimal) and not isinstance(value, bool):
        text = str(value)
    else:  # pydantic's str: its coercions (a str subclass, bytes) and its "a valid string"
        text = _TEXT.validate_python(value)
    length = len(text)
    if length > _ID_MAX_LENGTH:
        raise PydanticKnownError(
            "too_long", {"field_type": "Value", "max_length": _ID_MAX_LENGTH, "actual_length": length}
        )
    if not length:
        raise PydanticKnownError("too_short", {"field_type": "Value", "min_length": 1, "actual_length": 0})
    return text


Id = Annotated[
    str,
    GetPydanticSchema(
        lambda _source, _handler: core_schema.no_info_plain_validator_function(
            _id, serialization=core_schema.simple_ser_schema("str")
        )
    ),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": _ID_MAX_LENGTH}),
]


class _Amount:
    """``Field(ge=/gt=, max_digits, decimal_places, allow_inf_nan=False)`` on a Decimal: the
    same values, errors and JSON schema, for half the CPU.

    pydantic checks an amount's digits with ``normalize()`` and two ``as_tuple()`` calls, which
    cost a fifth of a checkout's decoding. A finite amount above the lower limit, below
    ``10 ** (max_digits - decimal_places)`` and with no more decimals than allowed has at most
    ``max_digits`` significant digits, so passes every one of pydantic's checks: it is let
    through on two comparisons and a ``quantize``. Any other amount gets pydantic's checks.
    """

    def __init__(self, max_digits: int, decimal_places: int, *, ge: int | None = None, gt: int | None = None):
        self._checked: TypeAdapter[Decimal] = TypeAdapter(
            Annotated[
                Decimal,
                Field(
                    ge=ge, gt=gt, max_digits=max_digits, decimal_places=decimal_places, allow_inf_nan=False
                ),
            ]
        )
        self._quantum = Decimal(1).scaleb(-decimal_places)
        self._bound = Decimal(10) ** (max_digits - decimal_places)
        self._floor = Decimal(ge if ge is not None else gt if gt is not None else -self._bound)
        self._floor_allowed = ge is not None

    def _check(self, value: Decimal) -> Decimal:
        if (
            value.is_finite()  # first: comparing a NaN raises
            and (self._floor <= value if self._floor_allowed else self._floor < value)
            and value < self._bound
            and value == value.quantize(self._quantum)
        ):
            return value
        try:
            return self._checked.validate_python(value)
        except ValidationError as exc:
            # Raised from here, the error is on this field's own input, as pydantic's would be.
            (error,) = exc.errors()
            raise PydanticKnownError(cast(ErrorType, error["type"]), error.get("ctx")) from None

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return handler(self._checked.core_schema)


Money = Annotated[Decimal, _Amount(18, 6)]
NonNegativeMoney = Annotated[Decimal, _Amount(18, 6, ge=0)]
PositiveMoney = Annotated[Decimal, _Amount(18, 6, gt=0)]
Points = Annotated[int, Field(ge=0, le=10**12)]
Quantity = Annotated[Decimal, _Amount(12, 4, gt=0)]


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
        if self.subtotal is not None:  # it is the effective subtotal, and never negative
            return self
        if self.price is None:
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
    metadata: FreeForm | None = None
    utm_data: FreeForm | None = None


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
    amount: PositiveMoney | None = None


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
    metadata: FreeForm | None = None


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
