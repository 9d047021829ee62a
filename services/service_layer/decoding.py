"""Decoding inbound Kafka records into typed events, or into the reason they are invalid.

Pure: a :class:`RawRecord` in, a :class:`Decoded` or :class:`Invalid` out. The idempotency
key is the ``event_id`` (body, then ``event-id`` header), else ``sha256:`` + the SHA-256 of the
canonical JSON body, so a byte-identical redelivery is a duplicate (docs/idempotency.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

import msgspec
from pydantic import TypeAdapter, ValidationError

from services.service_layer.tracing import TraceContext, parse_headers

E = TypeVar("E")


# Values, never changed once built; slotted and not frozen, as one of each is built per record
# and a frozen dataclass costs several times as much to build (services/domain/purchase.py).
@dataclass(slots=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                try:
                    return value.decode()
                except UnicodeDecodeError:
                    return None
        return None

    @property
    def source(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


@dataclass(slots=True)
class Decoded(Generic[E]):
    source: str  # topic:partition:offset, or where an internal event came from ("timer")
    event: E
    program: str
    event_id: str
    action: str
    occurred_at: datetime
    transaction_id: str | None
    # The inbound trace context (docs/tracing.md): the record's valid ``traceparent``, a
    # parked event's own span once released; None starts a new trace.
    trace: TraceContext | None = None

    @property
    def event_key(self) -> str:
        return self.event_id


@dataclass(slots=True)
class Invalid:
    record: RawRecord
    code: str  # malformed_json | schema_violation | unknown_action
    message: str
    program: str
    event_id: str | None
    action: str | None

    @property
    def source(self) -> str:
        return self.record.source

    @property
    def trace(self) -> TraceContext | None:
        return parse_headers(self.record.headers)

    @property
    def event_key(self) -> str:
        # Invalid records are made idempotent by their position, so a replay after a crash
        # does not publish a second DLQ record.
        return f"dlq:{self.record.source}"


# One decoder for every record: json.loads builds a new one per call when given parse_float.
_JSON = json.JSONDecoder(parse_float=Decimal)
# msgspec parses what it accepts as json.loads does (numbers with a fraction or an exponent as
# Decimal from their text, any size of integer, the last of duplicate keys) for under half the
# CPU: a checkout body 39k -> 16k instructions (cachegrind). It refuses a little json.loads
# accepts (NaN, lone surrogates); those, and every refusal (a BOM too), go through json.loads,
# whose acceptance and error messages stay the contract's.
_FAST_JSON = msgspec.json.Decoder(float_hook=Decimal)


def _parse_json(value: bytes) -> Any:
    """``json.loads(value.decode(), parse_float=Decimal)``: msgspec's result when it accepts the
    body, else json.loads's (decoder built once), a BOM refused as json.loads refuses it
    (tests/unit/test_records.py checks they agree)."""
    try:
        return _FAST_JSON.decode(value)
    except (ValueError, RecursionError):  # DecodeError, UnicodeDecodeError: json.loads says why
        pass
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
        where = ".".join(str(p) for p in err["loc"][1:] or err["loc"])  # drop the union tag
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


Translate = Callable[[dict[str, Any]], dict[str, Any] | None]


def decode(
    record: RawRecord,
    adapter: TypeAdapter[E],
    actions: frozenset[str],
    default_program: str,
    translate: Translate | None = None,
) -> Decoded[E] | Invalid | None:
    """``translate`` turns another shape (our own status messages) into an event body, or
    None for a record this consumer has nothing to do with (skipped: no inbox, no result)."""
    try:
        if record.value is None:
            raise ValueError("empty record value")
        body = _parse_json(record.value)
    except (UnicodeDecodeError, ValueError) as exc:
        return Invalid(record, "malformed_json", f"not UTF-8 JSON: {exc}", default_program, None, None)
    except RecursionError:  # not a failure of the batch: retried, it would fail the same forever
        return Invalid(record, "malformed_json", "JSON nested too deeply", default_program, None, None)

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
    action = body.get("action")
    if not isinstance(action, str):
        action = None

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

    occurred_at = getattr(event, "occurred_at", None)
    if occurred_at is None:
        try:
            occurred_at = datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)
        except (OverflowError, OSError, ValueError):  # a producer's clock or its bug
            message = (
                f"occurred_at is absent and the record's timestamp ({record.timestamp_ms} ms) is not a time"
            )
            return Invalid(record, "schema_violation", message, program, explicit_id, action)
    data = getattr(event, "data", None)
    # Positional, in field order: keywords cost as much again as building it, per record.
    return Decoded(
        record.source,
        event,
        program,
        explicit_id or _canonical_hash(body),
        action,
        occurred_at,
        getattr(data, "transaction_id", None),
        parse_headers(record.headers) if record.headers else None,
    )
