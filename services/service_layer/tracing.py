"""W3C Trace Context through the engine (docs/tracing.md): the ``traceparent`` of an inbound
record (or a trace started here) is carried onto every outbox message its event causes, and,
when an OpenTelemetry exporter is configured, each batch and each event is a span.

Without an exporter nothing here calls OpenTelemetry (it need not even be installed): an
event's span id is a random one, so its messages are children of a span nobody recorded,
still on the inbound trace. With one, :class:`OtelTracer` records the event's span and its
messages are children of that span.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from opentelemetry.trace import Span as OtelSpan
    from opentelemetry.trace import Tracer as ApiTracer

    from services.service_layer.decoding import Decoded, Invalid
    from services.service_layer.messages import OutboxMessage

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_HEX = frozenset("0123456789abcdef")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_SAMPLED = "01"


def new_span_id() -> str:
    span_id = os.urandom(8).hex()
    return span_id if span_id != _ZERO_SPAN else new_span_id()


def new_trace_id() -> str:
    trace_id = os.urandom(16).hex()
    return trace_id if trace_id != _ZERO_TRACE else new_trace_id()


@dataclass(frozen=True, slots=True)
class TraceContext:
    """A position in a trace: ``span_id`` is the span that messages carrying this context
    are children of (the inbound record's parent id, or an event's own span)."""

    trace_id: str  # 32 lowercase hex digits, not all zero
    span_id: str  # 16 lowercase hex digits, not all zero
    flags: str = _SAMPLED  # 2 hex digits; 01 = sampled
    state: str | None = None  # the tracestate header, passed through as it came

    @staticmethod
    def start() -> TraceContext:
        """A new trace (the engine is its root): marked sampled, so that consumers of the
        messages may record their part of it."""
        return TraceContext(new_trace_id(), new_span_id())

    def child(self) -> TraceContext:
        return TraceContext(self.trace_id, new_span_id(), self.flags, self.state)

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def headers(self) -> tuple[tuple[str, str], ...]:
        if self.state:
            return ((TRACEPARENT, self.traceparent), (TRACESTATE, self.state))
        return ((TRACEPARENT, self.traceparent),)


def _is_hex(text: str) -> bool:
    return _HEX.issuperset(text)


def parse_traceparent(value: str | None, state: str | None = None) -> TraceContext | None:
    """A ``traceparent`` header as W3C Trace Context level 1 defines it
    (``version-traceid-parentid-flags``, lowercase hex), or None when absent or malformed
    (then ``tracestate`` is ignored too, as the specification asks). A later version is read
    by its first four fields, and the context carried on as version 00."""
    if value is None or len(value) < 55:
        return None
    version, trace_id, span_id, flags = value[:2], value[3:35], value[36:52], value[53:55]
    if value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    if not _is_hex(version) or version == "ff":
        return None
    if len(value) > 55 and (version == "00" or value[55] != "-"):
        return None
    if not (_is_hex(trace_id) and _is_hex(span_id) and _is_hex(flags)):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    if version != "00":
        flags = f"{int(flags, 16) & 0x01:02x}"  # only the flags version 00 defines
    return TraceContext(trace_id, span_id, flags, (state.strip() or None) if state else None)


def parse_headers(headers: Sequence[tuple[str, bytes]]) -> TraceContext | None:
    """The trace context of a record's headers (the first ``traceparent``/``tracestate``)."""
    parent: bytes | None = None
    state: bytes | None = None
    for name, value in headers:
        if name == TRACEPARENT and parent is None:
            parent = value
        elif name == TRACESTATE and state is None:
            state = value
    if parent is None:
        return None
    try:
        return parse_traceparent(parent.decode("ascii"), state.decode("ascii") if state else None)
    except UnicodeDecodeError:
        return None


def stamp(messages: list[OutboxMessage], start: int, context: TraceContext) -> None:
    """Add the trace headers of ``context`` to the messages from ``start`` on."""
    if start >= len(messages):
        return
    headers = context.headers()
    for i in range(start, len(messages)):
        messages[i].headers += headers


class EventSpan(Protocol):
    """An event's span while the core handles it: ``context`` is what its messages carry."""

    @property
    def context(self) -> TraceContext: ...

    def end(self, outcome: str) -> None: ...


class Tracer(Protocol):
    def event(self, item: Decoded[Any] | Invalid, released_by: str | None = None) -> EventSpan: ...

    def batch(self, service: str, records: int) -> AbstractContextManager[object]: ...


class _IdsOnly:
    __slots__ = ("context",)

    def __init__(self, context: TraceContext) -> None:
        self.context = context

    def end(self, outcome: str) -> None:
        pass


class IdsTracer:
    """No exporter: trace ids carried, span ids generated, nothing recorded."""

    def event(self, item: Decoded[Any] | Invalid, released_by: str | None = None) -> EventSpan:
        parent = item.trace
        return _IdsOnly(parent.child() if parent is not None else TraceContext.start())

    def batch(self, service: str, records: int) -> AbstractContextManager[object]:
        return nullcontext()


IDS_ONLY = IdsTracer()


def _location(source: str) -> dict[str, Any]:
    topic, sep, rest = source.partition(":")
    partition, sep2, offset = rest.partition(":")
    if not (sep and sep2 and partition.isdigit() and offset.isdigit()):
        return {"loyalty.source": source}
    return {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": topic,
        "messaging.destination.partition.id": partition,
        "messaging.kafka.offset": int(offset),
    }


class _OtelEventSpan:
    __slots__ = ("context", "span")

    def __init__(self, span: OtelSpan, parent: TraceContext | None) -> None:
        self.span = span
        ctx = span.get_span_context()
        span_id = f"{ctx.span_id:016x}"
        if not ctx.is_valid or (parent is not None and span_id == parent.span_id):
            # The API without an SDK behind it gives no span of its own: ids only, then.
            self.context = parent.child() if parent is not None else TraceContext.start()
            return
        state = parent.state if parent is not None else None
        self.context = TraceContext(f"{ctx.trace_id:032x}", span_id, f"{int(ctx.trace_flags):02x}", state)

    def end(self, outcome: str) -> None:
        self.span.set_attribute("loyalty.outcome", outcome)
        self.span.end()


class OtelTracer:
    """A span per batch and per event on an OpenTelemetry tracer. An event's span is a child
    of its inbound ``traceparent`` (a new trace's root without one) and links to the span of
    the batch that handled it; its messages are children of it. OpenTelemetry is imported
    only here, when an exporter is configured (or a test passes its own tracer)."""

    def __init__(self, tracer: ApiTracer | None = None) -> None:
        from opentelemetry import trace

        self._trace = trace
        self.tracer = tracer if tracer is not None else trace.get_tracer("loyalty-engine")
        self._root = trace.set_span_in_context(trace.INVALID_SPAN)

    def _parent(self, parent: TraceContext | None) -> Any:
        """The OpenTelemetry context of an inbound trace context (a root's without one)."""
        trace = self._trace
        if parent is None:
            return self._root
        trace_state = None
        if parent.state:
            try:
                trace_state = trace.TraceState.from_header([parent.state])
            except Exception:  # an unparsable tracestate is carried on, not recorded
                trace_state = None
        remote = trace.SpanContext(
            int(parent.trace_id, 16),
            int(parent.span_id, 16),
            is_remote=True,
            trace_flags=trace.TraceFlags(int(parent.flags, 16)),
            trace_state=trace_state,
        )
        return trace.set_span_in_context(trace.NonRecordingSpan(remote))

    def event(self, item: Decoded[Any] | Invalid, released_by: str | None = None) -> EventSpan:
        trace = self._trace
        parent = item.trace
        attributes: dict[str, Any] = _location(item.source)
        attributes["loyalty.program"] = item.program
        code = getattr(item, "code", None)  # an Invalid record's
        if code is not None:
            attributes["loyalty.invalid"] = code
        if item.event_id is not None:
            attributes["loyalty.event_id"] = item.event_id
        transaction_id = getattr(item, "transaction_id", None)
        if transaction_id is not None:
            attributes["loyalty.transaction_id"] = transaction_id
        if released_by is not None:
            attributes["loyalty.released_by"] = released_by
        batch = trace.get_current_span().get_span_context()
        span = self.tracer.start_span(
            item.action or "invalid",
            context=self._parent(parent),
            kind=trace.SpanKind.CONSUMER,
            attributes=attributes,
            links=[trace.Link(batch)] if batch.is_valid else None,
        )
        return _OtelEventSpan(span, parent)

    def batch(self, service: str, records: int) -> AbstractContextManager[object]:
        return self._batch(service, records)

    @contextmanager
    def _batch(self, service: str, records: int) -> Iterator[object]:
        with self.tracer.start_as_current_span(
            f"{service} batch",
            context=self._root,
            attributes={"loyalty.service": service, "messaging.batch.message_count": records},
        ) as span:
            yield span
