"""Trace context through the real pipelines in memory (docs/tracing.md): every message an event
causes carries its trace; a released parked event continues its own; with an OpenTelemetry
tracer, each event is a span parented by the inbound ``traceparent``."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.domain.program import Program
from services.service_layer.actions import checkout_ingestion, pending_lifecycle
from services.service_layer.decoding import RawRecord
from services.service_layer.messages import OutboxMessage
from services.service_layer.pipeline import BatchPipeline
from services.service_layer.tracing import OtelTracer, TraceContext, parse_traceparent
from tests.core.engine import TOPIC_OF_ACTION, MemoryEngine

PROGRAM = Program.model_validate(
    {"name": "trc", "earn": {"level": "item"}, "pending_period": {"seconds": 3600}}
)
TRACE_A = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACE_B = "0af7651916cd43dd8448eb211c80319c"
PARENT = "00f067aa0ba902b7"


def tp(trace_id: str, parent: str = PARENT) -> bytes:
    return f"00-{trace_id}-{parent}-01".encode()


def checkout(event_id: str, tid: str = "T1") -> dict[str, Any]:
    return {
        "action": "checkout",
        "event_id": event_id,
        "customer": "ann",
        "data": {"transaction_id": tid, "total": 60, "items": [{"product_id": "p", "subtotal": 60}]},
    }


def accept(event_id: str, tid: str = "T1") -> dict[str, Any]:
    return {
        "action": "checkout_accept",
        "event_id": event_id,
        "customer": "ann",
        "data": {"transaction_id": tid},
    }


async def send(engine: MemoryEngine, body: dict[str, Any] | bytes, *headers: tuple[str, bytes]) -> int:
    """One record through its pipeline; return where its messages start in the outbox."""
    mark = len(engine.storage.state.outbox)
    if isinstance(body, bytes):
        record = replace(engine.record(checkout("x")), value=body)
        topic = "checkouts"
    else:
        record = engine.record(body)
        topic = TOPIC_OF_ACTION[body["action"]]
    await engine.pipelines[topic].process([replace(record, headers=tuple(headers))])
    return mark


def trace_of(message: OutboxMessage) -> TraceContext:
    headers = dict(message.headers)
    ctx = parse_traceparent(headers.get("traceparent"), headers.get("tracestate"))
    assert ctx is not None, message
    assert [n for n, _ in message.headers].count("traceparent") == 1
    return ctx


def topics(engine: MemoryEngine, messages: list[OutboxMessage]) -> set[str]:
    names = {
        getattr(engine.settings.topics, n): n
        for n in ("transaction_status", "webhooks", "event_results", "dlq")
    }
    return {names[m.topic] for m in messages}


def test_every_message_of_an_event_carries_its_inbound_trace() -> None:
    engine = MemoryEngine(PROGRAM)
    mark = asyncio.run(
        send(engine, checkout("co"), ("traceparent", tp(TRACE_A)), ("tracestate", b"congo=t61"))
    )
    messages = engine.storage.state.outbox[mark:]
    assert topics(engine, messages) == {"transaction_status", "webhooks", "event_results"}
    traces = {trace_of(m) for m in messages}
    # One span per event: its messages are its children, the inbound span its parent.
    assert len(traces) == 1
    (ctx,) = traces
    assert (ctx.trace_id, ctx.flags, ctx.state) == (TRACE_A, "01", "congo=t61")
    assert ctx.span_id != PARENT


def test_a_malformed_or_absent_traceparent_starts_a_new_trace() -> None:
    engine = MemoryEngine(PROGRAM)

    async def run() -> list[set[str]]:
        seen = []
        for n, headers in enumerate([(("traceparent", b"00-zz-bad-01"), ("tracestate", b"congo=t61")), ()]):
            mark = await send(engine, checkout(f"co{n}", f"T{n}"), *headers)
            messages = engine.storage.state.outbox[mark:]
            assert messages
            assert all("tracestate" not in dict(m.headers) for m in messages)
            seen.append({trace_of(m).trace_id for m in messages})
        return seen

    first, second = asyncio.run(run())
    assert len(first) == len(second) == 1
    assert first != second


def test_an_invalid_record_dead_letters_with_its_trace() -> None:
    engine = MemoryEngine(PROGRAM)
    mark = asyncio.run(send(engine, b"{not json", ("traceparent", tp(TRACE_A))))
    messages = engine.storage.state.outbox[mark:]
    assert topics(engine, messages) == {"dlq"}
    assert trace_of(messages[0]).trace_id == TRACE_A


def test_a_parked_event_released_later_continues_its_own_trace() -> None:
    engine = MemoryEngine(PROGRAM)

    async def run() -> tuple[int, int]:
        parked_at = await send(engine, accept("acc"), ("traceparent", tp(TRACE_A)))
        released_at = await send(engine, checkout("co"), ("traceparent", tp(TRACE_B)))
        return parked_at, released_at

    parked_at, released_at = asyncio.run(run())
    state = engine.storage.state
    assert engine.results()["acc"]["outcome"] == "applied"
    # Parking: the draft's announcement and the parked result are on the accept's trace.
    parking = state.outbox[parked_at:released_at]
    assert {trace_of(m).trace_id for m in parking} == {TRACE_A}
    (parking_span,) = {trace_of(m).span_id for m in parking}
    later = state.outbox[released_at:]
    by_trace: dict[str, list[OutboxMessage]] = {}
    for m in later:
        by_trace.setdefault(trace_of(m).trace_id, []).append(m)
    assert set(by_trace) == {TRACE_A, TRACE_B}
    released = by_trace[TRACE_A]
    assert topics(engine, released) == {"transaction_status", "webhooks", "event_results"}
    assert all(
        b'"event_id":"acc"' in m.value for m in released if m.topic == engine.settings.topics.event_results
    )
    # The release is a new span of the accept's trace (a child of its parking span).
    assert {trace_of(m).span_id for m in released} - {parking_span}
    assert all(b'"event_id":"co"' in m.value for m in by_trace[TRACE_B] if m.topic.endswith("event-results"))


def test_enrichment_continues_the_trace_of_the_status_record() -> None:
    engine = MemoryEngine(PROGRAM)
    mark = asyncio.run(send(engine, checkout("co"), ("traceparent", tp(TRACE_A))))
    status = next(
        m for m in engine.storage.state.outbox[mark:] if m.topic == engine.settings.topics.transaction_status
    )
    record = RawRecord(
        status.topic, 0, 1, status.key, status.value, tuple((n, v.encode()) for n, v in status.headers), 0
    )
    mark = len(engine.storage.state.outbox)
    asyncio.run(engine.status_pipeline.process([record]))
    enriched = engine.storage.state.outbox[mark:]
    assert enriched and b'"enrich"' in enriched[-1].value
    assert {trace_of(m).trace_id for m in enriched} == {TRACE_A}


# --- With an OpenTelemetry tracer --------------------------------------------------------------


def otel_engine() -> tuple[MemoryEngine, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    engine = MemoryEngine(PROGRAM)
    tracer = OtelTracer(provider.get_tracer("test"))
    for handler in (checkout_ingestion(), pending_lifecycle()):
        engine.pipelines[handler.topic] = BatchPipeline(
            engine.settings, engine.programs, engine.storage, handler, tracer=tracer
        )
    return engine, exporter


def spans_named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def test_each_event_is_a_span_parented_by_its_traceparent() -> None:
    engine, exporter = otel_engine()
    mark = asyncio.run(send(engine, checkout("co"), ("traceparent", tp(TRACE_A))))
    (span,) = spans_named(exporter, "checkout")
    (batch,) = spans_named(exporter, "checkout-ingestion batch")
    ctx = span.get_span_context()
    assert ctx is not None and span.parent is not None
    assert f"{ctx.trace_id:032x}" == TRACE_A
    assert f"{span.parent.span_id:016x}" == PARENT and span.parent.is_remote
    attributes = dict(span.attributes or {})
    assert attributes["loyalty.event_id"] == "co"
    assert attributes["loyalty.transaction_id"] == "T1"
    assert attributes["loyalty.outcome"] == "applied"
    assert attributes["messaging.destination.name"] == engine.settings.topics.checkouts
    assert attributes["messaging.destination.partition.id"] == "0"
    assert isinstance(attributes["messaging.kafka.offset"], int)
    batch_ctx = batch.get_span_context()
    assert batch_ctx is not None and batch.parent is None
    assert [link.context.span_id for link in span.links] == [batch_ctx.span_id]
    # Its messages are children of the event's span.
    for message in engine.storage.state.outbox[mark:]:
        assert trace_of(message).traceparent == f"00-{TRACE_A}-{ctx.span_id:016x}-01"


def test_without_traceparent_an_event_span_is_a_root_and_a_release_a_child_of_its_parking() -> None:
    engine, exporter = otel_engine()

    async def run() -> None:
        await send(engine, accept("acc"))
        await send(engine, checkout("co"), ("traceparent", tp(TRACE_B)))

    asyncio.run(run())
    parking, released = spans_named(exporter, "checkout_accept")
    assert parking.parent is None  # a new trace
    assert dict(parking.attributes or {})["loyalty.outcome"] == "parked"
    parking_ctx, released_ctx = parking.get_span_context(), released.get_span_context()
    assert parking_ctx is not None and released_ctx is not None and released.parent is not None
    assert released_ctx.trace_id == parking_ctx.trace_id
    assert released.parent.span_id == parking_ctx.span_id
    assert dict(released.attributes or {})["loyalty.released_by"] == "co"
    assert dict(released.attributes or {})["loyalty.outcome"] == "applied"
    results = [m for m in engine.storage.state.outbox if m.topic == engine.settings.topics.event_results]
    final = [m for m in results if b'"event_id":"acc"' in m.value][-1]
    assert trace_of(final).span_id == f"{released_ctx.span_id:016x}"
