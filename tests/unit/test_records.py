"""records.decode(): raw Kafka records into typed events or the reason they are invalid."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.contract.inbound import CheckoutClaimEvent, CheckoutEvent
from services.service_layer.actions import checkout_ingestion
from services.service_layer.decoding import Decoded, Invalid, RawRecord, _parse_json, decode

TIMESTAMP_MS = 1_709_294_400_000  # 2024-03-01T12:00:00Z
CHECKOUTS = checkout_ingestion()
DEFAULT = "default"

CHECKOUT: dict[str, Any] = {
    "action": "checkout",
    "customer": "c1",
    "data": {"transaction_id": 1703545579, "total": 150.5},
}


def record(
    value: bytes | str | dict[str, Any] | list[Any] | None,
    headers: tuple[tuple[str, bytes], ...] = (),
    offset: int = 7,
) -> RawRecord:
    if isinstance(value, dict | list):
        value = json.dumps(value)
    if isinstance(value, str):
        value = value.encode()
    return RawRecord(
        topic="loyalty.checkouts",
        partition=2,
        offset=offset,
        key=b"k",
        value=value,
        headers=headers,
        timestamp_ms=TIMESTAMP_MS,
    )


def run(rec: RawRecord) -> Decoded[Any] | Invalid:
    return decode(rec, CHECKOUTS.adapter, CHECKOUTS.actions, DEFAULT)


def decoded(rec: RawRecord) -> Decoded[Any]:
    result = run(rec)
    assert isinstance(result, Decoded), result
    return result


def invalid(rec: RawRecord) -> Invalid:
    result = run(rec)
    assert isinstance(result, Invalid), result
    return result


def with_(**fields: Any) -> dict[str, Any]:
    return {**CHECKOUT, **fields}


# --- Invalid records ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [b"{not json", b"\xff\xfe\x00", b"", None])
def test_malformed_json(value: bytes | None) -> None:
    result = invalid(record(value))
    assert result.code == "malformed_json"
    assert result.program == DEFAULT
    assert result.event_id is None
    assert result.action is None
    assert result.event_key == "dlq:loyalty.checkouts:2:7"


@pytest.mark.parametrize("body", [[CHECKOUT], '"text"', "42", "null"])
def test_non_object_body_is_a_schema_violation(body: Any) -> None:
    result = invalid(record(body))
    assert result.code == "schema_violation"
    assert "object" in result.message


def test_unknown_action_keeps_the_event_id_and_program_from_the_body() -> None:
    result = invalid(record(with_(action="refund", event_id="ev-9", program="acme")))
    assert result.code == "unknown_action"
    assert result.event_id == "ev-9"
    assert result.program == "acme"
    assert result.action == "refund"
    assert "refund" in result.message


def test_missing_action_is_unknown() -> None:
    body = {k: v for k, v in CHECKOUT.items() if k != "action"}
    result = invalid(record(body, headers=(("event-id", b"hdr-1"),)))
    assert result.code == "unknown_action"
    assert result.action is None
    assert result.event_id == "hdr-1"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"transaction_id": "t", "total": -1}, "data.total"),
        ({"transaction_id": "t"}, "data.total"),
        ({"total": 1}, "data.transaction_id"),
        ({"transaction_id": "t", "total": 1, "items": [{"quantity": 1}]}, "data.items.0"),
    ],
)
def test_schema_violation_names_the_field(data: dict[str, Any], field: str) -> None:
    result = invalid(record(with_(data=data, event_id="ev-1")))
    assert result.code == "schema_violation"
    assert field in result.message
    assert result.event_id == "ev-1"
    assert result.action == "checkout"


def test_an_integer_beyond_64_bits_in_metadata_is_a_schema_violation() -> None:
    """Not a failure of the batch: it would be retried forever and stall the partition."""
    data = {"transaction_id": "t", "total": 1, "metadata": {"n": 2**64}}
    result = invalid(record(with_(data=data, event_id="ev-1")))
    assert result.code == "schema_violation"
    assert "data.metadata: Value error, the integer at n does not fit in 64 bits" in result.message


def test_schema_violation_on_claim_names_the_field() -> None:
    result = invalid(record({"action": "checkout_claim", "data": {"transaction_id": "t"}}))
    assert result.code == "schema_violation"
    assert "customer" in result.message
    assert not result.message.startswith("checkout_claim.")


# --- Decoded records ----------------------------------------------------------------------------


def test_decodes_a_checkout_with_decimal_amounts() -> None:
    result = decoded(record(with_(event_id="ev-1")))
    assert isinstance(result.event, CheckoutEvent)
    assert result.action == "checkout"
    assert result.transaction_id == "1703545579"
    assert result.event.data.total == Decimal("150.5")
    assert isinstance(result.event.data.total, Decimal)
    assert result.event_key == result.event_id == "ev-1"


def test_decodes_a_claim() -> None:
    result = decoded(record({"action": "checkout_claim", "customer": "c", "data": {"transaction_id": 5}}))
    assert isinstance(result.event, CheckoutClaimEvent)
    assert result.action == "checkout_claim"
    assert result.transaction_id == "5"


def test_event_id_from_the_body_wins_over_the_header() -> None:
    rec = record(with_(event_id="body-id"), headers=(("event-id", b"header-id"),))
    assert decoded(rec).event_id == "body-id"


def test_numeric_event_id_in_the_body() -> None:
    assert decoded(record(with_(event_id=12))).event_id == "12"


def test_event_id_from_the_header_when_the_body_has_none() -> None:
    rec = record(CHECKOUT, headers=(("other", b"x"), ("event-id", b"header-id")))
    assert decoded(rec).event_id == "header-id"


def test_empty_body_event_id_falls_back_to_the_header() -> None:
    rec = record(with_(event_id=""), headers=(("event-id", b"header-id"),))
    result = run(rec)
    assert result.event_id == "header-id"


def test_event_id_defaults_to_a_hash_of_the_canonical_body() -> None:
    a = '{"action": "checkout", "customer": "c1", "data": {"transaction_id": "t", "total": 150}}'
    b = '{"data":{"total":150,"transaction_id":"t"},"customer":"c1","action":"checkout"}'
    id_a = decoded(record(a, offset=1)).event_id
    id_b = decoded(record(b, offset=2)).event_id
    assert id_a.startswith("sha256:")
    assert len(id_a) == len("sha256:") + 64
    assert id_a == id_b
    other = '{"action": "checkout", "customer": "c1", "data": {"transaction_id": "t", "total": 151}}'
    assert decoded(record(other)).event_id != id_a


def test_program_precedence_body_then_header_then_default() -> None:
    hdr = (("program", b"from-header"),)
    assert decoded(record(with_(program="from-body"), headers=hdr)).program == "from-body"
    assert decoded(record(CHECKOUT, headers=hdr)).program == "from-header"
    assert decoded(record(CHECKOUT)).program == DEFAULT
    # Invalid records carry the program too, so the rejection is reported to the right tenant.
    assert invalid(record(with_(action="x"), headers=hdr)).program == "from-header"


def test_occurred_at_defaults_to_the_record_timestamp() -> None:
    result = decoded(record(CHECKOUT))
    assert result.occurred_at == datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    assert result.occurred_at.tzinfo is not None


def test_a_record_timestamp_that_is_no_time_is_a_schema_violation_when_occurred_at_is_absent() -> None:
    """A producer's clock gone wrong fails its own record, not the batch (retried forever)."""
    rec = record(with_(event_id="ev-1"))
    rec.timestamp_ms = 10**16
    result = invalid(rec)
    assert result.code == "schema_violation"
    assert result.message == f"occurred_at is absent and the record's timestamp ({10**16} ms) is not a time"
    rec.value = json.dumps(with_(event_id="ev-1", occurred_at="2023-12-25T10:00:00+01:00")).encode()
    assert decoded(rec).occurred_at == datetime(2023, 12, 25, 9, 0, tzinfo=UTC)


def test_json_nested_too_deeply_is_malformed_not_a_failure_of_the_batch() -> None:
    result = invalid(record(b"[" * 100_000 + b"]" * 100_000))
    assert (result.code, result.message) == ("malformed_json", "JSON nested too deeply")


def test_occurred_at_from_the_body_wins() -> None:
    result = decoded(record(with_(occurred_at="2023-12-25T10:00:00+01:00")))
    assert result.occurred_at == datetime(2023, 12, 25, 9, 0, tzinfo=UTC)


def test_record_helpers() -> None:
    rec = record(CHECKOUT, headers=(("bad", b"\xff"), ("event-id", b"x")))
    assert rec.header("bad") is None
    assert rec.header("missing") is None
    assert rec.header("event-id") == "x"
    assert rec.source == "loyalty.checkouts:2:7"


# JSON texts (numbers with fractions and exponents among them), the same with a BOM or
# cut short, and any bytes at all.
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)
_json_texts = _json_values.map(json.dumps)
_bodies = st.one_of(
    _json_texts.map(str.encode),
    _json_texts.map(lambda text: ("\ufeff" + text).encode()),
    st.tuples(_json_texts, st.integers(min_value=0, max_value=20)).map(lambda t: t[0][: t[1]].encode()),
    st.binary(max_size=24),
)


@given(_bodies)
def test_bodies_are_parsed_as_json_loads_parses_them(value: bytes) -> None:
    """The decoder built once gives what ``json.loads(..., parse_float=Decimal)`` gives, and
    refuses what it refuses with the same message (the DLQ's error-message header)."""
    try:
        expected = json.loads(value.decode("utf-8"), parse_float=Decimal)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError alike
        with pytest.raises(type(exc), match=f"^{re.escape(str(exc))}$"):
            _parse_json(value)
    else:
        assert repr(_parse_json(value)) == repr(expected)
