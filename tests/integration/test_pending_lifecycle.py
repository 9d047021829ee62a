"""Pending lifecycle end to end: checkout ingestion and pending lifecycle consumers together
on the real broker and database, the pending-period timer, drafts and parking."""

from __future__ import annotations

import asyncio
import signal
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.domain.program import Program
from services.entrypoints.timer import pending_timer
from services.service_layer.actions import checkout_ingestion, pending_lifecycle
from tests.harness import Engine, make_program
from tests.integration.conftest import Db

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def event(
    action: str, customer: str | None, tid: str, event_id: str, minute: int, **data: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "action": action,
        "event_id": event_id,
        "occurred_at": at(minute),
        "data": {"transaction_id": tid, **data},
    }
    if customer is not None:
        body["customer"] = customer
    return body


def lifecycle_engine(kafka: str, database_url: str, *programs: Program, timer: bool = False) -> Engine:
    engine = Engine(kafka, database_url, [checkout_ingestion(), pending_lifecycle()], list(programs))
    if timer:
        engine.peers["pending-lifecycle"] = [pending_timer]
    return engine


def pending_program(seconds: int = 14 * 24 * 3600, **fields: Any) -> Program:
    return make_program(f"pend-{uuid.uuid4().hex[:6]}", pending_period={"seconds": seconds}, **fields)


async def send(engine: Engine, body: dict[str, Any]) -> None:
    topic = "checkouts" if body["action"] in ("checkout", "checkout_claim") else "lifecycle"
    await engine.send(body, topic=topic)


async def test_update_accept_reject_and_unspend(kafka_bootstrap, database_url, dbq: Db):
    program = pending_program()
    c = "shopper"
    async with lifecycle_engine(kafka_bootstrap, database_url, program) as engine:
        steps = [
            event("checkout", c, "A", "a-co", 0, total=50),
            event("checkout_accept", c, "A", "a-acc", 1),
            event("checkout", c, "B", "b-co", 2, total=100, points_burned=20),
            event(
                "checkout_update", c, "B", "b-up", 3, total=40, items=[{"product_id": "x", "subtotal": 40}]
            ),
        ]
        for body in steps:
            await send(engine, body)
            await engine.final_results([body["event_id"]])
        mid = await dbq.customer(program.name, c)
        txn_b = await dbq.transaction(program.name, "B")
        # A accepted: 50 earned; B burned 20 and waits with 40 pending points after the update.
        assert (mid["score"], mid["spendable"], mid["pending"], mid["spent"]) == (50, 30, 40, 20)
        assert txn_b["status"] == "pending" and txn_b["points_pending"] == 40 and txn_b["total"] == "40.00"
        assert mid["purchase_count"] == 1  # B is not a purchase yet

        more = [
            event("checkout_reject", c, "B", "b-rej", 4),
            event("point_unspend", c, "B", "b-unspend", 5),
            event("checkout_accept", c, "A", "a-acc-again", 6),
            event("checkout_update", c, "A", "a-up-late", 7, total=1),
            event("checkout_accept", c, "B", "b-acc-late", 8),
        ]
        for body in more:
            await send(engine, body)
        results = await engine.final_results([b["event_id"] for b in more])
        await engine.wait_for("transaction_status", 4)

    assert results["b-rej"]["outcome"] == "applied"
    assert results["b-unspend"]["effects"]["points_restored"] == 20
    for late in ("a-acc-again", "a-up-late", "b-acc-late"):
        assert (results[late]["outcome"], results[late]["error"]["code"]) == ("rejected", "not_pending")
    end = await dbq.customer(program.name, c)
    assert (end["score"], end["spendable"], end["pending"], end["spent"]) == (50, 50, 0, 0)
    assert end["purchase_count"] == 1
    a = await dbq.transaction(program.name, "A")
    assert (
        a["total"] == "50.00"
        and a["status"] == "accepted"
        and a["accepted_at"].startswith("2026-03-01T12:01")
    )
    assert (await dbq.transaction(program.name, "B"))["status"] == "rejected"
    assert await dbq.ledger_mismatches(program.name) == []
    # Status changes are keyed by transaction id: ordered per transaction, not across them.
    changes: dict[str, list[tuple[str | None, str]]] = {}
    for s in engine.values("transaction_status"):
        changes.setdefault(s["transaction_id"], []).append((s["from_status"], s["to_status"]))
    assert changes == {
        "A": [(None, "pending"), ("pending", "accepted")],
        "B": [(None, "pending"), ("pending", "rejected")],
    }


async def test_accept_before_checkout_parks_on_a_draft(kafka_bootstrap, database_url, dbq: Db):
    program = pending_program()
    async with lifecycle_engine(kafka_bootstrap, database_url, program) as engine:
        await send(engine, event("checkout_update", "early", "T", "up", 1, total=80))
        await send(engine, event("checkout_accept", "early", "T", "acc", 2))
        await engine.wait_for("event_results", 2)
        parked = {v["event_id"]: v for v in engine.values("event_results")}
        assert parked["up"]["outcome"] == parked["acc"]["outcome"] == "parked"
        # The accept was sent after the update with the same key: it waits behind it.
        assert parked["up"]["error"]["code"] == "awaiting_checkout"
        assert parked["acc"]["error"]["code"] == "awaiting_earlier_event"
        assert (await dbq.transaction(program.name, "T"))["status"] == "draft"
        assert await dbq.count("parked_events", program.name) == 2

        await send(engine, event("checkout", "early", "T", "co", 0, total=100))
        results = await engine.final_results(["co", "up", "acc"])
    assert all(results[e]["outcome"] == "applied" for e in ("co", "up", "acc"))
    txn = await dbq.transaction(program.name, "T")
    assert (txn["status"], txn["total"], txn["points_earned"]) == ("accepted", "80.00", 80)
    assert await dbq.count("parked_events", program.name) == 0
    customer = await dbq.customer(program.name, "early")
    assert (customer["score"], customer["pending"], customer["purchase_count"]) == (80, 0, 1)


async def test_timer_accepts_each_due_transaction_once_with_three_processes(
    kafka_bootstrap, database_url, dbq: Db, tmp_path: Path
):
    program = pending_program(seconds=2)
    count = 60
    async with lifecycle_engine(kafka_bootstrap, database_url, program) as engine:
        # Only checkout ingestion in-process; three lifecycle processes run the timer.
        await engine.stop_service("pending-lifecycle")
        timers = [
            await engine.spawn("services.lifecycle", tmp_path, LOYALTY_TIMER_POLL_SECONDS="0.2")
            for _ in range(3)
        ]
        try:
            now = datetime.now(UTC)
            await engine.send_many(
                [
                    {
                        "action": "checkout",
                        "event_id": f"co-{n}",
                        "customer": f"c{n % 10}",
                        "occurred_at": now.isoformat(),
                        "data": {"transaction_id": f"T{n}", "total": 10},
                    }
                    for n in range(count)
                ]
            )
            for _ in range(300):
                accepted = await dbq.pool.fetchval(
                    "SELECT count(*) FROM transactions WHERE program = $1 AND status = 'accepted'",
                    program.name,
                )
                if accepted == count:
                    break
                await asyncio.sleep(0.1)
            assert accepted == count
            await asyncio.sleep(1)  # give a late duplicate transition the chance to show up
            late = event("checkout_update", "c0", "T0", "late-update", 0, total=1)
            await send(engine, late)
            results = await engine.final_results(["late-update"])
        finally:
            for process in timers:
                process.send_signal(signal.SIGTERM)
            for process in timers:
                await process.wait()

    assert results["late-update"]["error"]["code"] == "not_pending"
    history = await dbq.pool.fetch(
        "SELECT transaction_id, count(*) AS n FROM status_history"
        " WHERE program = $1 AND to_status = 'accepted' GROUP BY transaction_id",
        program.name,
    )
    assert len(history) == count and all(row["n"] == 1 for row in history)
    releases = await dbq.pool.fetchval(
        "SELECT count(*) FROM points_ledger WHERE program = $1 AND movement = 'pending_earned'", program.name
    )
    assert releases == count
    scores = await dbq.pool.fetch("SELECT score, pending FROM customers WHERE program = $1", program.name)
    assert all((r["score"], r["pending"]) == (60, 0) for r in scores)
    assert await dbq.ledger_mismatches(program.name) == []
