"""W3C Trace Context parsing (services/service_layer/tracing.py): valid ``traceparent`` headers
are read, malformed ones ignored (with their ``tracestate``)."""

from __future__ import annotations

import pytest

from services.service_layer.messages import OutboxMessage
from services.service_layer.tracing import TraceContext, parse_headers, parse_traceparent, stamp

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"


def test_a_valid_traceparent_is_read_with_its_tracestate() -> None:
    ctx = parse_traceparent(VALID, "congo=t61rcWkgMzE")
    assert ctx == TraceContext(TRACE, PARENT, "01", "congo=t61rcWkgMzE")
    assert ctx.traceparent == VALID
    assert ctx.headers() == (("traceparent", VALID), ("tracestate", "congo=t61rcWkgMzE"))


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        f"00-{TRACE}-{PARENT}-0",  # short
        f"00-{TRACE.upper()}-{PARENT}-01",  # uppercase hex
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE}-{PARENT}-01",  # forbidden version
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has exactly four fields
        f"00_{TRACE}-{PARENT}-01",
        f"00-{TRACE}-{PARENT}-zz",
        f"0g-{TRACE}-{PARENT}-01",
    ],
)
def test_a_malformed_traceparent_is_ignored(value: str) -> None:
    assert parse_traceparent(value, "congo=t61rcWkgMzE") is None


def test_a_later_version_is_read_by_its_first_four_fields() -> None:
    ctx = parse_traceparent(f"01-{TRACE}-{PARENT}-03-whatever")
    assert ctx == TraceContext(TRACE, PARENT, "01")
    assert parse_traceparent(f"01-{TRACE}-{PARENT}-03x") is None


def test_headers_first_traceparent_and_bad_bytes() -> None:
    headers = (("event-id", b"e1"), ("traceparent", VALID.encode()), ("traceparent", b"x"))
    assert parse_headers(headers) == TraceContext(TRACE, PARENT, "01")
    assert parse_headers((("traceparent", b"\xff" * 55),)) is None
    assert parse_headers(()) is None


def test_a_child_keeps_the_trace_and_takes_a_new_span_id() -> None:
    parent = TraceContext(TRACE, PARENT, "00", "a=b")
    child = parent.child()
    assert (child.trace_id, child.flags, child.state) == (TRACE, "00", "a=b")
    assert child.span_id != PARENT and len(child.span_id) == 16
    started = TraceContext.start()
    assert parse_traceparent(started.traceparent) == started
    assert started.trace_id != TraceContext.start().trace_id


def test_stamping_adds_the_headers_and_keeps_every_field() -> None:
    ctx = TraceContext(TRACE, PARENT, "01", "a=b")
    messages = [OutboxMessage("t", b"k", b"v", (("h", "1"),)), OutboxMessage("u", None, b"w")]
    stamp(messages, 1, ctx)
    assert messages[0] == OutboxMessage("t", b"k", b"v", (("h", "1"),))
    assert messages[1] == OutboxMessage("u", None, b"w", ctx.headers())
