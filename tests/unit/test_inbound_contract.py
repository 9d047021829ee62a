"""The inbound checkout contract: Decimal amounts from numbers or strings, ids, guest flags."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from services.contract import inbound
from services.contract.inbound import CheckoutClaimEvent, CheckoutData, CheckoutEvent, CheckoutItem


def _models(model: type[BaseModel]) -> set[type[BaseModel]]:
    found = {model}
    for field in model.model_fields.values():
        for arg in _flatten(field.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel) and arg not in found:
                found |= _models(arg)
    return found


def _flatten(annotation: Any) -> list[Any]:
    args = getattr(annotation, "__args__", ())
    return [annotation, *(a for arg in args for a in _flatten(arg))]


_INBOUND_MODELS = set().union(
    *(
        _models(m)
        for union in (
            inbound.CheckoutsTopicEvent,
            inbound.LifecycleTopicEvent,
            inbound.RefundsTopicEvent,
            inbound.CatalogTopicEvent,
        )
        for m in _flatten(union.__origin__)
        if isinstance(m, type) and issubclass(m, BaseModel)
    )
)


def event(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "action": "checkout",
        "customer": "c1",
        "data": {"transaction_id": "t1", "total": 150},
    }
    body.update(overrides)
    return body


@pytest.mark.parametrize("total", [150, "150", "150.00", Decimal(150)])
def test_total_accepts_numbers_and_numeric_strings(total: Any) -> None:
    ev = CheckoutEvent.model_validate(event(data={"transaction_id": "t1", "total": total}))
    assert ev.data.total == Decimal(150)
    assert isinstance(ev.data.total, Decimal)


def test_amounts_are_decimal_never_float() -> None:
    raw = (
        '{"action": "checkout", "customer": "c1", "data": {"transaction_id": "t1", "total": 0.3,'
        ' "items": [{"price": "0.1", "quantity": 3, "discount": 0.05, "subtotal": 0.25}]}}'
    )
    ev = CheckoutEvent.model_validate(json.loads(raw, parse_float=Decimal))
    item = ev.data.items[0]
    for value in (ev.data.total, item.price, item.quantity, item.discount, item.subtotal):
        assert isinstance(value, Decimal)
        assert not isinstance(value, float)
    assert ev.data.total == Decimal("0.3")
    assert item.discount == Decimal("0.05")
    assert item.effective_subtotal == Decimal("0.25")
    dumped = ev.model_dump()
    assert isinstance(dumped["data"]["total"], Decimal)


def test_python_float_input_is_converted_to_an_exact_decimal() -> None:
    data = CheckoutData.model_validate({"transaction_id": "t", "total": 0.1})
    assert isinstance(data.total, Decimal)
    assert data.total == Decimal("0.1")


@pytest.mark.parametrize("guest", [True, "true", "True", 1, "1"])
def test_guest_true_accepts_strings_and_needs_no_customer(guest: Any) -> None:
    ev = CheckoutEvent.model_validate(
        {"action": "checkout", "guest": guest, "data": {"transaction_id": "t", "total": 1}}
    )
    assert ev.guest is True
    assert ev.customer is None


def test_guest_checkout_with_a_customer_is_invalid() -> None:
    with pytest.raises(ValidationError, match="guest"):
        CheckoutEvent.model_validate(event(guest="true"))


def test_customer_required_unless_guest() -> None:
    with pytest.raises(ValidationError, match="customer"):
        CheckoutEvent.model_validate(
            {"action": "checkout", "guest": "false", "data": {"transaction_id": "t", "total": 1}}
        )


def test_numeric_ids_become_strings() -> None:
    ev = CheckoutEvent.model_validate(
        {
            "action": "checkout",
            "customer": 42,
            "event_id": Decimal("7"),
            "data": {"transaction_id": 1703545579, "total": 1, "items": [{"product_id": 1, "price": 1}]},
        }
    )
    assert ev.customer == "42"
    assert ev.event_id == "7"
    assert ev.data.transaction_id == "1703545579"
    assert ev.data.items[0].product_id == "1"


def test_boolean_is_not_an_id() -> None:
    with pytest.raises(ValidationError):
        CheckoutData.model_validate({"transaction_id": True, "total": 1})


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"price": 50, "quantity": 2, "discount": 5}, Decimal(95)),
        ({"price": "55", "discount": "5"}, Decimal(50)),
        ({"price": "9.99", "quantity": "3"}, Decimal("29.97")),
        ({"price": 50, "quantity": 2, "discount": 5, "subtotal": 80}, Decimal(80)),  # given wins
        ({"subtotal": 12}, Decimal(12)),
    ],
)
def test_item_subtotal_derived_from_price_quantity_discount(item: dict[str, Any], expected: Decimal) -> None:
    parsed = CheckoutItem.model_validate(item)
    assert parsed.effective_subtotal == expected
    assert isinstance(parsed.effective_subtotal, Decimal)


def test_item_needs_a_subtotal_or_a_price() -> None:
    with pytest.raises(ValidationError, match="subtotal or a price"):
        CheckoutItem.model_validate({"product_id": "x", "quantity": 2})


def test_derived_subtotal_is_never_negative() -> None:
    try:
        item = CheckoutItem.model_validate({"price": 10, "quantity": 1, "discount": 20})
    except ValidationError:
        return
    assert item.effective_subtotal >= 0


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"transaction_id": "t", "total": -1}, "total"),
        ({"transaction_id": "t", "total": "-0.01"}, "total"),
        ({"transaction_id": "t", "total": "abc"}, "total"),
        ({"transaction_id": "t", "total": "NaN"}, "total"),
        ({"transaction_id": "t", "total": "Infinity"}, "total"),
        ({"transaction_id": "t", "total": "1.0000001"}, "total"),  # > 6 decimal places
        ({"transaction_id": "t", "total": 1, "points_burned": -1}, "points_burned"),
        ({"transaction_id": "t", "total": 1, "items": [{"price": -1}]}, "price"),
        ({"transaction_id": "t", "total": 1, "items": [{"price": 1, "quantity": 0}]}, "quantity"),
        ({"transaction_id": "", "total": 1}, "transaction_id"),
        ({"total": 1}, "transaction_id"),
        ({"transaction_id": "t", "total": 1, "currency": "EURO"}, "currency"),
    ],
)
def test_invalid_data_is_rejected(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        CheckoutEvent.model_validate(event(data=data))
    assert any(field in (str(p) for p in err["loc"]) for err in exc.value.errors())


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (event(custom_attr=1), "custom_attr"),
        (event(data={"transaction_id": "t", "total": 1, "totl": 2}), "data.totl"),
        (event(data={"transaction_id": "t", "total": 1, "items": [{"subtotal": 1, "colour": "red"}]}),
         "data.items.0.colour"),
    ],
)  # fmt: skip
def test_unknown_fields_are_refused_naming_the_field(body: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as exc:
        CheckoutEvent.model_validate(body)
    assert [".".join(map(str, e["loc"])) for e in exc.value.errors()] == [where]
    assert exc.value.errors()[0]["type"] == "extra_forbidden"


def test_free_objects_take_any_attribute() -> None:
    free = {"anything": {"nested": [1, "x"]}, "utm_source": "mail"}
    ev = CheckoutEvent.model_validate(
        event(data={"transaction_id": "t", "total": 1, "metadata": free, "utm_data": free})
    )
    assert ev.data.metadata == free and ev.data.utm_data == free


@pytest.mark.parametrize("field", ["metadata", "utm_data"])
@pytest.mark.parametrize(
    ("free", "where"),
    [
        ({"n": 2**64}, "n"),
        ({"a": {"b": [1, -(2**63) - 1]}}, "a.b[1]"),
    ],
)
def test_free_objects_refuse_integers_beyond_64_bits(field: str, free: dict[str, Any], where: str) -> None:
    """They go out in every snapshot, which no 64-bit JSON writer or reader takes whole: refused
    here, they cannot stall a partition later (services/contract/free_form.py)."""
    with pytest.raises(ValidationError, match=rf"the integer at {re.escape(where)} does not fit in 64 bits"):
        CheckoutEvent.model_validate(event(data={"transaction_id": "t", "total": 1, field: free}))


def test_free_objects_take_64_bit_integers_and_decimals_of_any_size() -> None:
    free = {"max": 2**64 - 1, "min": -(2**63), "big": Decimal("1E+400"), "flag": True}
    ev = CheckoutEvent.model_validate(event(data={"transaction_id": "t", "total": 1, "metadata": free}))
    assert ev.data.metadata == free


@pytest.mark.parametrize("model", sorted(_INBOUND_MODELS, key=lambda m: m.__name__), ids=lambda m: m.__name__)
def test_every_inbound_model_forbids_unknown_fields(model: type[BaseModel]) -> None:
    """Every model reachable from a topic's union refuses unknown fields, nested ones too,
    except the free objects."""
    assert model.model_config.get("extra") == "forbid", model


def test_occurred_at_must_be_timezone_aware() -> None:
    with pytest.raises(ValidationError):
        CheckoutEvent.model_validate(event(occurred_at="2024-01-01T00:00:00"))
    ev = CheckoutEvent.model_validate(event(occurred_at="2024-01-01T00:00:00Z"))
    assert ev.occurred_at is not None and ev.occurred_at.tzinfo is not None


def test_claim_event_needs_a_customer_and_a_transaction() -> None:
    ev = CheckoutClaimEvent.model_validate(
        {"action": "checkout_claim", "customer": "c", "data": {"transaction_id": 5}}
    )
    assert ev.data.transaction_id == "5"
    with pytest.raises(ValidationError):
        CheckoutClaimEvent.model_validate({"action": "checkout_claim", "data": {"transaction_id": "5"}})
