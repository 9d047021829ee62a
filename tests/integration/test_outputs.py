"""What a downstream consumer reads, on the real broker and database: money as plain decimal
strings in the currency's minor units, and results of the engine's own actions marked internal."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from services.entrypoints.timer import pending_timer
from services.service_layer.actions import (
    checkout_ingestion,
    pending_lifecycle,
    refunds,
    transaction_enrichment,
)
from tests.harness import Engine, make_program
from tests.integration.conftest import Db
from tests.integration.test_pending_lifecycle import event

pytestmark = pytest.mark.integration


def snapshots(engine: Engine, tid: str) -> list[dict[str, Any]]:
    return [s["transaction"] for s in engine.values("transaction_status") if s["transaction_id"] == tid]


@pytest.mark.parametrize(
    ("currency", "total", "refund", "expected"),
    [
        ("EUR", "1e2", "80", ("100.00", "80.00", "0.50", "0.00")),
        ("JPY", "1E+3", "800", ("1000", "800", "1", "0")),
        ("KWD", 100, "80.5", ("100.000", "80.500", "0.500", "0.000")),
    ],
)
async def test_money_is_a_plain_decimal_in_the_currencys_minor_units(
    kafka_bootstrap, database_url, dbq: Db, currency: str, total: Any, refund: str, expected: tuple[str, ...]
):
    program = make_program(f"money-{uuid.uuid4().hex[:6]}", currency=currency)
    handlers = [checkout_ingestion(), refunds()]
    price = {"EUR": "0.5", "JPY": "1", "KWD": "0.5"}[currency]
    async with Engine(kafka_bootstrap, database_url, handlers, [program]) as engine:
        items = [{"product_id": "p", "price": price, "quantity": 2, "subtotal": total}]
        await engine.send(
            event("checkout", "ann", "T", "buy", 0, total=total, items=items), topic="checkouts"
        )
        await engine.final_results(["buy"])
        await engine.send(event("partial_refund", "ann", "T", "back", 1, amount=refund), topic="refunds")
        await engine.final_results(["back"])
        await engine.wait_for("transaction_status", 2)
        await engine.wait_for("webhooks", 4)  # created, earned, accepted, partially_refunded
    registered, refunded = snapshots(engine, "T")
    total_text, refunded_text, price_text, zero = expected
    assert (registered["total"], registered["refunded"]) == (total_text, zero)
    assert (refunded["total"], refunded["refunded"]) == (total_text, refunded_text)
    assert refunded["items"][0]["price"] == price_text
    assert refunded["items"][0]["subtotal"] == total_text
    hooks = [json.loads(r.value) for r in engine.received["webhooks"]]
    last = next(h for h in hooks if h["type"] == "transaction.partially_refunded")
    assert last["data"]["transaction"]["refunded"] == refunded_text
    # The stored document, which the read API serves, says the same.
    assert (await dbq.transaction(program.name, "T"))["refunded"] == refunded_text


async def test_results_of_the_engines_own_actions_are_marked_internal(kafka_bootstrap, database_url):
    """Enrichment's ``enrich`` and the timer's ``auto_expire`` were sent by no producer: their
    results carry ``internal: true`` and the header ``internal: true``; producers' do not."""
    program = make_program(f"int-{uuid.uuid4().hex[:6]}", pending_period={"seconds": 1})
    handlers = [checkout_ingestion(), pending_lifecycle(), transaction_enrichment()]
    engine = Engine(kafka_bootstrap, database_url, handlers, [program], timer_poll_seconds=0.2)
    engine.peers["pending-lifecycle"] = [pending_timer]
    async with engine:
        body = event("checkout", "ann", "T", "buy", 0, total=10)
        body.pop("occurred_at")  # now: due a second later
        await engine.send(body, topic="checkouts")
        await engine.final_results(["buy", "enrich:T"])
        await engine.wait_for("event_results", 3)
    results = {json.loads(r.value)["action"]: r for r in engine.received["event_results"]}
    assert set(results) == {"checkout", "enrich", "auto_expire"}
    for action, record in results.items():
        internal = action != "checkout"
        assert json.loads(record.value)["internal"] is internal, action
        assert (dict(record.headers).get("internal") == b"true") is internal, action
