"""Nothing parked forever (issue 14): the pending timer gives an event parked longer than its
program's ``parked_max_age`` its final ``rejected`` result, ``parked_expired``, deletes its
parked row and sends no webhook nor status change; replicas never expire one event twice.
On the real broker and database."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from services.domain.program import Program
from services.entrypoints.timer import pending_timer
from services.service_layer.actions import checkout_ingestion, pending_lifecycle
from tests.harness import Engine, make_program
from tests.integration.conftest import Db

pytestmark = pytest.mark.integration


def program(max_age: int | None) -> Program:
    fields: dict[str, Any] = {"pending_period": {"seconds": 3600}}
    if max_age is not None:
        fields["parked_max_age"] = {"seconds": max_age}
    return make_program(f"prk-{uuid.uuid4().hex[:6]}", **fields)


def accept(program: Program, tid: str, event_id: str, customer: str = "ann") -> dict[str, Any]:
    """An accept for a transaction whose checkout never comes: it parks on a draft."""
    return {
        "action": "checkout_accept",
        "event_id": event_id,
        "program": program.name,
        "customer": customer,
        "data": {"transaction_id": tid},
    }


async def test_an_event_parked_too_long_gets_its_final_result_and_nothing_else(
    kafka_bootstrap: str, database_url: str, dbq: Db
):
    short, default = program(max_age=1), program(max_age=None)
    engine = Engine(
        kafka_bootstrap,
        database_url,
        [checkout_ingestion(), pending_lifecycle()],
        [short, default],
        timer_poll_seconds=0.2,
    )
    engine.peers["pending-lifecycle"] = [pending_timer]
    async with engine:
        await engine.send(accept(short, "NEVER", "acc"), topic="lifecycle")
        await engine.send(accept(default, "NEVER", "acc-kept"), topic="lifecycle")
        await engine.wait_for_result("acc")
        await engine.wait_for_result("acc-kept")
        statuses_before = len(await engine.wait_for("transaction_status", 2))  # the two drafts
        results = await engine.final_results(["acc"])
        await asyncio.sleep(1.5)  # the timer keeps sweeping: nothing more may come
        assert len(engine.received["transaction_status"]) == statuses_before
        assert engine.received["webhooks"] == []
        every = [v for v in engine.values("event_results") if v["event_id"] in ("acc", "acc-kept")]

    expired = results["acc"]
    assert (expired["outcome"], expired["error"]["code"]) == ("rejected", "parked_expired")
    assert (expired["action"], expired["transaction_id"], expired["program"]) == (
        "checkout_accept",
        "NEVER",
        short.name,
    )
    assert "awaiting_checkout" in expired["error"]["message"]
    # One parked and one final result for the expired event; the default (30 days) keeps the other.
    assert Counter((v["event_id"], v["outcome"]) for v in every) == {
        ("acc", "parked"): 1,
        ("acc", "rejected"): 1,
        ("acc-kept", "parked"): 1,
    }
    assert await dbq.count("parked_events", short.name) == 0
    assert await dbq.count("parked_events", default.name) == 1
    # The draft stays (drafts are not in the read API); a late checkout would register it.
    assert (await dbq.transaction(short.name, "NEVER"))["status"] == "draft"


async def test_two_timer_replicas_never_expire_one_event_twice(
    kafka_bootstrap: str, database_url: str, dbq: Db, tmp_path: Path
):
    prog = program(max_age=3)
    count = 40
    engine = Engine(kafka_bootstrap, database_url, [checkout_ingestion(), pending_lifecycle()], [prog])
    async with engine:
        # Park them in-process (no timer), then let two lifecycle processes expire them.
        bodies = [accept(prog, f"T{n}", f"acc-{n}", customer=f"c{n % 7}") for n in range(count)]
        for body in bodies:
            await engine.send(body, topic="lifecycle")
        await engine.wait_for("event_results", count)
        assert await dbq.count("parked_events", prog.name) == count
        await engine.stop_service("pending-lifecycle")
        replicas = [
            await engine.spawn(
                "services.lifecycle", tmp_path, LOYALTY_TIMER_POLL_SECONDS="0.1", LOYALTY_TIMER_BATCH="3"
            )
            for _ in range(2)
        ]
        try:
            await engine.final_results([b["event_id"] for b in bodies], timeout=60)
            await asyncio.sleep(1.5)  # give a second expiry of an event the chance to show up
        finally:
            for process in replicas:
                process.send_signal(signal.SIGTERM)
            for process in replicas:
                await process.wait()
        finals = Counter(
            v["event_id"]
            for v in engine.values("event_results")
            if v["outcome"] == "rejected" and v["error"]["code"] == "parked_expired"
        )

    assert finals == dict.fromkeys((b["event_id"] for b in bodies), 1)
    assert await dbq.count("parked_events", prog.name) == 0
    assert engine.received["webhooks"] == []
