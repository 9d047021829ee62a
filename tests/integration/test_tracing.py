"""Trace context end to end on the real broker and database (docs/tracing.md): the records an
event causes on transaction-status, webhooks, event-results and the DLQ carry its trace id, and
an event parked in the database continues its own trace when a later batch releases it."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from services.service_layer.actions import checkout_ingestion, pending_lifecycle
from services.service_layer.tracing import parse_traceparent
from tests.harness import Engine, make_program

pytestmark = pytest.mark.integration

TRACE_A = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACE_B = "0af7651916cd43dd8448eb211c80319c"
PARENT = "00f067aa0ba902b7"


def traceparent(trace_id: str) -> list[tuple[str, bytes]]:
    return [("traceparent", f"00-{trace_id}-{PARENT}-01".encode()), ("tracestate", b"congo=t61")]


def trace_of(record: Any) -> tuple[str, str | None]:
    headers = {name: value.decode() for name, value in record.headers}
    ctx = parse_traceparent(headers.get("traceparent"), headers.get("tracestate"))
    assert ctx is not None, record
    assert ctx.span_id != PARENT  # a child of the inbound span
    return ctx.trace_id, ctx.state


async def test_records_carry_the_trace_of_the_event_that_caused_them(kafka_bootstrap, database_url):
    program = make_program(f"trace-{uuid.uuid4().hex[:6]}", pending_period={"seconds": 3600})
    engine = Engine(kafka_bootstrap, database_url, [checkout_ingestion(), pending_lifecycle()], [program])
    async with engine:
        accept = {
            "action": "checkout_accept",
            "event_id": "acc",
            "customer": "ann",
            "data": {"transaction_id": "P"},
        }
        await engine.send(accept, topic="lifecycle", headers=traceparent(TRACE_A))
        await engine.wait_for_result("acc")  # parked, in the database
        checkout = {
            "action": "checkout",
            "event_id": "co",
            "customer": "ann",
            "data": {"transaction_id": "P", "total": 60, "items": [{"product_id": "p", "subtotal": 60}]},
        }
        await engine.send(checkout, topic="checkouts", headers=traceparent(TRACE_B))
        await engine.send(b"{not json", key="ann", topic="checkouts", headers=traceparent(TRACE_B))
        results = await engine.final_results(["acc", "co"])
        assert results["acc"]["outcome"] == results["co"]["outcome"] == "applied"
        await engine.wait_for("dlq", 1)
        # Results can arrive before the other records of the same commit (other topics).
        await engine.wait_for("transaction_status", 3)  # draft, pending, accepted
        await engine.wait_for("webhooks", 4)  # created and pending points; earned and accepted

        def traces(name: str) -> dict[tuple[str, str | None], list[Any]]:
            grouped: dict[tuple[str, str | None], list[Any]] = {}
            for record in engine.received[name]:
                grouped.setdefault(trace_of(record), []).append(record)
            return grouped

        a, b = (TRACE_A, "congo=t61"), (TRACE_B, "congo=t61")
        by_event = {(json.loads(r.value)["event_id"], trace_of(r)) for r in engine.received["event_results"]}
        assert by_event == {("acc", a), ("co", b)}  # parked and applied: both on the accept's trace
        status = traces("transaction_status")
        # The draft (parking) and pending -> accepted (release) on the accept's trace; the
        # checkout's draft -> pending on its own.
        assert {t: len(r) for t, r in status.items()} == {a: 2, b: 1}
        assert set(traces("webhooks")) == {a, b}
        assert set(traces("dlq")) == {b}
