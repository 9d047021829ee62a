"""decode() gives exactly what it gave before its CPU cost was cut: a frozen copy of the decoder
and of the inbound models as they were (ids and amounts checked by plain pydantic constraints)
is the reference. Random records, valid and not, go through both; ids and amounts are also
compared alone on any Python input, as the read API and the import validate them too.

The copy pins behaviour, not the contract: a deliberate change to an inbound model changes the
copy with it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache, reduce
from operator import or_
from typing import Annotated, Any, Literal, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from services.contract import inbound
from services.domain.catalog import Offer, Product, Store
from services.domain.transaction import IntentType
from services.service_layer.actions import (
    checkout_ingestion,
    enrichment,
    pending_lifecycle,
    refunds,
    transaction_enrichment,
)
from services.service_layer.decoding import Decoded, Invalid, RawRecord, Translate, decode
from services.service_layer.registry import TopicHandler
from services.service_layer.tracing import parse_headers

# --- The reference: services/contract/inbound.py as it was (comments and docstrings dropped) -----


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
    offers: list[Id] = Field(default_factory=list, max_length=100)


class PartialRefundData(RefundData):
    amount: PositiveMoney


class RefundItemData(RefundData):
    product_id: Id
    quantity: Quantity = Decimal(1)
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
    transaction_id: Id | None = None
    code: Id
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
        if isinstance(body, dict) and isinstance(body.get("data"), dict) and "customer" in body:
            envelope = {k: v for k, v in body.items() if k != "customer"}
            body = {**envelope, "data": {"customer": body["customer"], **body["data"]}}
        return body


class CouponInvalidateData(_Body):
    code: Id
    reason: Annotated[str, Field(max_length=1000)] | None = None


class CouponInvalidateEvent(_Event):
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


class EnrichData(_Body):
    transaction_id: Id
    product_ids: list[Id] = Field(default_factory=list, max_length=1000)
    store: Id | None = None


class EnrichEvent(_LifecycleEvent):
    action: Literal["enrich"]
    data: EnrichData


REFERENCE_MODELS: dict[str, type[BaseModel]] = {
    get_args(model.model_fields["action"].annotation)[0]: model
    for model in (
        CheckoutEvent,
        CheckoutClaimEvent,
        CouponRedeemEvent,
        CheckoutUpdateEvent,
        CheckoutAcceptEvent,
        CheckoutRejectEvent,
        PointUnspendEvent,
        RefundEvent,
        PartialRefundEvent,
        RefundItemEvent,
        OfferUnredeemEvent,
        CouponUnredeemEvent,
        ProductUpsertEvent,
        ProductDeleteEvent,
        StoreUpsertEvent,
        StoreDeleteEvent,
        OfferUpsertEvent,
        CouponAssignEvent,
        CouponInvalidateEvent,
        EnrichEvent,
    )
}


# --- The reference: decode() of services/service_layer/decoding.py as it was --------------------

_JSON = json.JSONDecoder(parse_float=Decimal)


def _parse_json(value: bytes) -> Any:
    text = value.decode("utf-8")
    if text.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    return _JSON.decode(text)


def _canonical_hash(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)
    return None


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"][1:] or err["loc"])
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def reference_decode(
    record: RawRecord,
    adapter: TypeAdapter[Any],
    actions: frozenset[str],
    default_program: str,
    translate: Translate | None = None,
) -> Decoded[Any] | Invalid | None:
    try:
        if record.value is None:
            raise ValueError("empty record value")
        body = _parse_json(record.value)
    except (UnicodeDecodeError, ValueError) as exc:
        return Invalid(record, "malformed_json", f"not UTF-8 JSON: {exc}", default_program, None, None)

    if not isinstance(body, dict):
        return Invalid(
            record, "schema_violation", "the body must be a JSON object", default_program, None, None
        )
    if translate is not None:
        translated = translate(body)
        if translated is None:
            return None
        body = translated
    program = _text(body.get("program")) or record.header("program") or default_program
    explicit_id = _text(body.get("event_id")) or record.header("event-id")
    action = body.get("action") if isinstance(body.get("action"), str) else None

    if action not in actions:
        return Invalid(
            record,
            "unknown_action",
            f"action {action!r} is not handled on {record.topic}; expected one of {sorted(actions)}",
            program,
            explicit_id,
            action,
        )
    try:
        event: Any = adapter.validate_python(body)
    except ValidationError as exc:
        return Invalid(record, "schema_violation", _summarise(exc), program, explicit_id, action)

    occurred_at = getattr(event, "occurred_at", None) or datetime.fromtimestamp(
        record.timestamp_ms / 1000, UTC
    )
    data = getattr(event, "data", None)
    return Decoded(
        source=record.source,
        event=event,
        program=program,
        event_id=explicit_id or _canonical_hash(body),
        action=action,
        occurred_at=occurred_at,
        transaction_id=getattr(data, "transaction_id", None),
        trace=parse_headers(record.headers) if record.headers else None,
    )


# --- Bodies: each field valid, or anything a producer might send ---------------------------------


def _json(value: Any) -> str:
    """JSON text with a Decimal written as the number it is, digits and exponent kept (json.dumps
    cannot), so the parser sees fractions, exponents and long numbers."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_json(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value)


_odd = st.sampled_from([True, False, None, [], {}, "", "x", "NaN", "1e400", 1.5, float("nan"), float("inf")])
_decimals = st.decimals(allow_nan=False, allow_infinity=False)
_amounts = st.decimals(min_value=0, max_value=10**6, places=2)
# Integers in free-form objects stay within 64 bits: which of them a free-form field accepts is
# that field's own rule, not the decoder's.
_free = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | _decimals
    | st.floats()
    | st.text(max_size=4),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)

_ids_ok = st.one_of(
    st.text(min_size=1, max_size=6),
    st.integers(),
    _decimals,
    st.sampled_from([Decimal("12.50"), Decimal("1E+2"), Decimal("-0"), "i" * 200]),
)
_ids_any = st.one_of(
    _ids_ok,
    st.just(""),
    st.integers(min_value=201, max_value=205).map(lambda n: "i" * n),
    st.integers(min_value=10**200, max_value=10**203),
    _odd,
)
_money_ok = st.one_of(_amounts, _amounts.map(str), st.integers(min_value=0, max_value=10**9))
# Amounts at and around the limits of the digit checks: 12 (or 8) whole digits, 6 (or 4) decimals,
# 18 (or 12) digits, with trailing zeros and exponents.
_edge_amounts = st.builds(
    lambda digits, exponent, zeros, sign: Decimal(f"{sign}{digits}{'0' * zeros}E{exponent}"),
    st.integers(min_value=0, max_value=10**19),
    st.integers(min_value=-30, max_value=14),
    st.integers(min_value=0, max_value=12),
    st.sampled_from(["", "-"]),
)
_limit_amounts = st.sampled_from(
    [
        Decimal(f"{sign}{value}")
        for whole, places in ((12, 6), (8, 4))
        for value in (
            f"1E+{whole}",
            f"{'9' * whole}.{'9' * places}",
            f"{'9' * whole}.{'9' * places}0000",
            f"{'9' * whole}.{'9' * (places + 1)}",
            f"1E-{places}",
            f"1E-{places + 1}",
            f"1{'0' * places}E-{places * 2}",
        )
        for sign in ("", "-")
    ]
)
_money_any = st.one_of(
    _money_ok,
    _decimals,
    _limit_amounts,
    _edge_amounts,
    _edge_amounts.map(str),
    st.integers(min_value=-2, max_value=10**20),
    st.sampled_from(
        ["-1", "1e3", "1.0000001", "12345678901234.5", " 5 ", "1_0", "abc", "sNaN", "-0", "0E-9"]
    ),
    _odd,
)
_moments_ok = st.sampled_from([None, "2024-01-01T00:00:00Z", "2024-03-01T12:00:00+01:00"])
_free_dicts = st.one_of(st.none(), st.dictionaries(st.text(max_size=4), _free, max_size=4))

# Per field name: (valid values, any values).
FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    **dict.fromkeys(
        ["transaction_id", "product_id", "code", "customer", "store", "store_id", "event_id", "program"],
        (_ids_ok, _ids_any),
    ),
    **dict.fromkeys(
        ["total", "price", "discount", "subtotal", "amount", "value", "balance", "quantity"],
        (_money_ok, _money_any),
    ),
    **dict.fromkeys(
        ["points_burned", "points_rewarded"],
        (
            st.integers(min_value=0, max_value=10**6),
            st.one_of(
                st.integers(min_value=-1, max_value=10**12 + 1), st.sampled_from(["5", Decimal("2.0")]), _odd
            ),
        ),
    ),
    **dict.fromkeys(
        ["coupons", "offers", "product_ids"],
        (st.lists(_ids_ok, max_size=3), st.lists(_ids_any, max_size=3) | _odd),
    ),
    **dict.fromkeys(
        ["product_name", "product_url", "category", "pool", "reason"],
        (st.none() | st.text(max_size=5), st.integers() | _odd),
    ),
    **dict.fromkeys(
        ["auto_accept", "expires_at", "occurred_at"],
        (_moments_ok, st.sampled_from(["2024-01-01T00:00:00", "2024-13-01", 1709294400]) | _odd),
    ),
    **dict.fromkeys(["metadata", "utm_data"], (_free_dicts, _free)),
    "currency": (st.sampled_from(["EUR", None]), st.sampled_from(["eur", "EURO", 978]) | _odd),
    "guest": (st.sampled_from([True, False, "true", "false", 1, 0]), st.sampled_from(["maybe", 2]) | _odd),
}


# A valid checkout has a customer and is no guest's, or is a guest's with no customer.
_GUEST = {"customer": st.sampled_from([False, "false", 0]), "guest": st.sampled_from([True, "true", 1])}


@cache
def _object(model: Any, ok: bool) -> st.SearchStrategy[dict[str, Any]]:
    """A body of ``model``: with ``ok`` every field a valid value and the required ones there
    (cross-field rules may still fail); else any field anything, missing or unknown."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for name, field in model.model_fields.items():
        if name == "action":
            fields[name] = st.just(get_args(field.annotation)[0])
        elif name == "data":
            fields[name] = _object(field.annotation, ok)
        elif name == "items":
            fields[name] = st.lists(_object(CheckoutItem, ok), max_size=3)
        elif name == "type":
            choices = (
                [*field.annotation] if isinstance(field.annotation, type) else get_args(field.annotation)
            )
            fields[name] = st.sampled_from(choices) if ok else st.sampled_from(["shop", 3, *choices]) | _odd
        elif name in FIELDS:
            fields[name] = FIELDS[name][0] if ok else st.one_of(*FIELDS[name])
    if not ok:
        odd = {"action": st.text(max_size=8) | _odd, "customer": _ids_any, "unexpected": st.integers()}
        return st.fixed_dictionaries({}, optional={**odd, **fields})
    required = {name for name in fields if model.model_fields[name].is_required()}
    if "guest" in fields:
        return st.one_of(
            _some({**fields, "guest": _GUEST[who]}, required | {who}, frozenset({"customer"} - {who}))
            for who in ("customer", "guest")
        )
    if model is CheckoutItem:  # a valid item has a subtotal or a price
        return st.one_of(_some(fields, required | {pick}) for pick in ("subtotal", "price"))
    return _some(fields, required)


def _some(
    fields: dict[str, st.SearchStrategy[Any]], required: set[str], left_out: frozenset[str] = frozenset()
) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {k: v for k, v in fields.items() if k in required},
        optional={k: v for k, v in fields.items() if k not in required | left_out},
    )


@cache
def _event(actions: frozenset[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        _object(REFERENCE_MODELS[action], ok) for action in sorted(actions) for ok in (True, False)
    )


_status = st.fixed_dictionaries(
    {},
    optional={
        "from_status": st.sampled_from([None, "draft", "pending"]),
        "to_status": st.sampled_from([None, "draft", "pending", "accepted"]),
        "transaction_id": _ids_any,
        "program": _ids_any,
        "customer": _ids_any,
        "at": _moments_ok,
        "transaction": st.fixed_dictionaries(
            {}, optional={"items": st.lists(st.fixed_dictionaries({}, optional={"product_id": _ids_any}))}
        )
        | _odd,
    },
)

_TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
_headers = st.lists(
    st.tuples(
        st.sampled_from(["event-id", "program", "traceparent", "tracestate", "other"]),
        st.sampled_from([b"h-1", b"", b"\xff", _TRACEPARENT, b"vendor=1"]),
    ),
    max_size=3,
).map(tuple)


def _values(bodies: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[bytes | None]:
    """The record value: the body as JSON, or that cut short, behind a BOM, with bytes that are
    not UTF-8; or JSON that is no object, or nothing."""
    texts = bodies.map(_json)
    spoilt = st.one_of(
        texts.map(lambda t: ("\ufeff" + t).encode()),
        st.tuples(texts, st.integers(min_value=0, max_value=40)).map(lambda p: p[0][: p[1]].encode()),
        texts.map(lambda t: t.encode() + b"\xff"),
        _free.map(lambda v: _json(v).encode()),
        st.sampled_from([None, b"", b"NaN", b'{"action": NaN}', b"[]", b'{"a": 1} x']),
    )
    clean = texts.map(str.encode)
    return st.one_of(clean, clean, clean, spoilt)


def records(bodies: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[RawRecord]:
    return st.builds(
        RawRecord,
        topic=st.just("loyalty.topic"),
        partition=st.just(1),
        offset=st.integers(min_value=0, max_value=10),
        key=st.just(b"k"),
        value=_values(bodies),
        headers=_headers,
        timestamp_ms=st.just(1_709_294_400_000),
    )


# --- The comparison ------------------------------------------------------------------------------


def _decoded(result: Decoded[Any]) -> tuple[Any, ...]:
    # repr tells Decimal("1.0") from Decimal("1.00") and a float from a Decimal; == would not.
    return (
        type(result.event).__name__,
        repr(result.event.model_dump()),
        result.source,
        result.program,
        result.event_id,
        result.action,
        result.occurred_at,
        result.transaction_id,
        result.trace,
    )


def assert_same(
    record: RawRecord, handler: TopicHandler, reference: TypeAdapter[Any], translate: Translate | None = None
) -> None:
    new = decode(record, handler.adapter, handler.actions, "default", translate)
    old = reference_decode(record, reference, handler.actions, "default", translate)
    if isinstance(old, Decoded):
        assert isinstance(new, Decoded), new
        assert _decoded(new) == _decoded(old)
    else:
        assert new == old  # the same Invalid (code, message, program, event id, action), or None


def reference_adapter(handler: TopicHandler) -> TypeAdapter[Any]:
    """The reference models of the handler's actions, built as services/service_layer/registry.py
    builds its adapter."""
    union = reduce(or_, [REFERENCE_MODELS[name] for name in sorted(handler.actions)])
    return TypeAdapter(Annotated[union, Field(discriminator="action")])


HANDLERS = {
    h.topic: (h, reference_adapter(h))
    for h in (checkout_ingestion(), pending_lifecycle(), refunds(), enrichment())
}
RECORDS = {topic: records(_event(h.actions)) for topic, (h, _) in HANDLERS.items()}
STATUS = transaction_enrichment()
STATUS_REFERENCE = reference_adapter(STATUS)
EXAMPLES = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("topic", sorted(HANDLERS))
@EXAMPLES
@given(data=st.data())
def test_decode_gives_what_it_gave(topic: str, data: st.DataObject) -> None:
    handler, reference = HANDLERS[topic]
    assert_same(data.draw(RECORDS[topic]), handler, reference)


@EXAMPLES
@given(records(_status))
def test_decode_of_translated_status_messages_gives_what_it_gave(record: RawRecord) -> None:
    assert_same(record, STATUS, STATUS_REFERENCE, STATUS.translate)


_CHECKOUT: dict[str, Any] = {
    "event_id": "bench-1",
    "customer": "customer-1",
    "action": "checkout",
    "data": {
        "transaction_id": "order-1",
        "total": "59.90",
        "items": [
            {"product_id": "p1", "price": "19.95", "quantity": 2, "subtotal": "39.90", "category": "shoes"},
            {"product_id": "p1", "price": "20.00", "quantity": 1, "subtotal": "20.00"},
        ],
    },
}


def _checkout(**changes: Any) -> bytes:
    body = json.loads(json.dumps(_CHECKOUT))
    for path, value in changes.items():
        *parents, name = path.split("__")
        node = body
        for parent in parents:
            node = node[int(parent)] if parent.isdigit() else node[parent]
        if value is ...:
            del node[name]
        else:
            node[name] = value
    return _json(body).encode()


@pytest.mark.parametrize(
    "value",
    [
        _checkout(),
        _checkout(
            data__transaction_id=1703545579,
            data__total=Decimal("59.90"),
            data__items__0__product_id=17,
            data__items__0__price=Decimal("19.95"),
            data__items__1__subtotal=Decimal("20.00"),
        ),
        _checkout(event_id=...),
        _checkout(customer=True),
        _checkout(customer=Decimal("12.50"), event_id=Decimal("1E+2"), data__transaction_id=Decimal("-0")),
        _checkout(customer=""),
        _checkout(customer="c" * 200),
        _checkout(customer="c" * 201),
        _checkout(customer=10**250),
        _checkout(customer=1.5),
        _checkout(data__coupons=["a", 1, Decimal("2.5"), False, ""]),
        _checkout(data__items__0__subtotal=..., data__items__0__discount="100"),
        _checkout(data__items__0__subtotal=..., data__items__0__price=...),
        _checkout(data__items__0__subtotal=..., data__items__0__discount="1.5"),
        _checkout(customer=..., guest="true"),
        _checkout(guest=True),
        _checkout(guest=False, customer=...),
        _checkout(
            data__metadata={"rate": Decimal("0.1000"), "big": Decimal("1E+400"), "f": 1.5, "n": [None, 1]}
        ),
        _checkout(data__total=Decimal("1.0000001"), data__items__0__quantity=Decimal("123456789")),
        _checkout(data__total=-1, data__points_burned=True, data__currency="EURO", extra=1),
        _checkout(action="checkout_claim"),
        _checkout(action="refund"),
        _checkout(action=5),
        _checkout(program=12, occurred_at="2024-01-01T00:00:00"),
        _checkout(occurred_at="2024-03-01T12:00:00+01:00"),
        _checkout().replace(b'"customer-1"', b"NaN"),
        _checkout().replace(b'"59.90"', b"Infinity"),
        b"\xef\xbb\xbf" + _checkout(),
        _checkout() + b"\xff",
        _checkout()[:40],
        b'{"action": "checkout", "action": "refund"}',
        b'{"action": "coupon_unredeem", "data": {"code": "x"}}',
        b'{"action": "partial_refund", "customer": 1, "data": {"transaction_id": 2, "amount": 0}}',
        b'{"action": "coupon_assign", "customer": 7, "data": {"code": "g", "balance": 5.50}}',
        b"[]",
        b"null",
        b"",
        None,
    ],
)
def test_decode_of_chosen_records_gives_what_it_gave(value: bytes | None) -> None:
    for topic, (handler, reference) in HANDLERS.items():
        record = RawRecord(topic, 0, 1, b"k", value, (("event-id", b"h-1"),), 1_709_294_400_000)
        assert_same(record, handler, reference)


# --- The two types whose validation changed, on any Python input (the API's and the import's too) --


def _outcome(adapter: TypeAdapter[Any], value: Any) -> str:
    try:
        return repr(adapter.validate_python(value))
    except ValidationError as exc:
        return repr(exc.errors(include_url=False))


class _Text(str):
    pass


_inputs = st.one_of(
    st.text(max_size=3),
    st.integers(min_value=199, max_value=202).map(lambda n: "i" * n),
    st.integers(),
    st.decimals(),
    _limit_amounts,
    _edge_amounts,
    _edge_amounts.map(str),
    st.floats(),
    st.booleans(),
    st.none(),
    st.binary(max_size=3),
    st.text(max_size=3).map(_Text),
    st.sampled_from([[], {}, IntentType.Shop, Decimal("sNaN"), "1_0", " 5 ", "١٢"]),
)
CHANGED = [
    (inbound.Id, Id),
    (inbound.Money, Money),
    (inbound.NonNegativeMoney, NonNegativeMoney),
    (inbound.PositiveMoney, PositiveMoney),
    (inbound.Quantity, Quantity),
]


@pytest.mark.parametrize(("new", "old"), [(TypeAdapter(n), TypeAdapter(o)) for n, o in CHANGED])
@settings(max_examples=200, deadline=None)
@given(value=_inputs)
def test_ids_and_amounts_validate_as_they_did(
    new: TypeAdapter[Any], old: TypeAdapter[Any], value: Any
) -> None:
    """The same value or the same errors, word for word, input and context included."""
    assert _outcome(new, value) == _outcome(old, value)


def test_ids_and_amounts_keep_their_json_schemas() -> None:
    for new, old in CHANGED:
        for mode in ("validation", "serialization"):
            assert TypeAdapter(new).json_schema(mode=mode) == TypeAdapter(old).json_schema(mode=mode)
