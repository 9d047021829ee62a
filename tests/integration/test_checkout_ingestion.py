"""Checkout ingestion end to end: real Kafka in, real PostgreSQL state, real Kafka out."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import signal
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook as StandardWebhook

from services.config.webhook_secrets import new_webhook_secret
from services.contract.examples import seed_item_level_checkout
from tests.integration.conftest import Db

pytestmark = pytest.mark.integration

SEED_ITEM_LEVEL = seed_item_level_checkout()


def checkout(
    customer: str | None, tid: str, total: Any, event_id: str | None = None, **data: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"action": "checkout", "data": {"transaction_id": tid, "total": total, **data}}
    if customer is None:
        body["guest"] = "true"
    else:
        body["customer"] = customer
    if event_id:
        body["event_id"] = event_id
    return body


async def test_seed_item_level_checkout_accepted_with_signed_webhooks(
    checkout_engine, program_factory, dbq: Db
):
    program = program_factory("items", earn={"campaigns": [{"id": "bonus", "points": 15}]})
    # Rotation: the new secret and the old one both sign; receivers verify with either.
    new, old = new_webhook_secret(), new_webhook_secret()
    async with checkout_engine(program, webhook_secrets={program.name: [new, old]}) as engine:
        # Give the customer points to burn: a first purchase earning 100.
        await engine.send(checkout(SEED_ITEM_LEVEL["customer"], "first", 85, event_id="e-first"))
        await engine.results(1)
        await engine.send({**SEED_ITEM_LEVEL, "event_id": "e-seed"})
        results = await engine.results(2)
        await engine.wait_for("transaction_status", 2)
        await engine.wait_for("webhooks", 7)

    seed = results["e-seed"]
    assert seed["outcome"] == "applied" and seed["error"] is None
    assert seed["effects"] == {
        "points_earned": 30,
        "points_pending": 0,
        "points_burned": 10,
        "points_revoked": 0,
        "points_restored": 0,
    }
    txn = await dbq.transaction(program.name, "1703545579")
    assert txn is not None and txn["status"] == "accepted"
    assert [i["points_rewarded"] for i in txn["items"]] == [20, 10]
    assert sum(i["points_burned"] for i in txn["items"]) == 10
    assert Decimal(txn["total"]) == Decimal(150)
    customer = await dbq.customer(program.name, SEED_ITEM_LEVEL["customer"])
    # first: 85 points + 15 bonus = 100; seed: its items' 20 + 10, no bonus (partner-computed
    # points are used as they are), 10 burned.
    assert (customer["score"], customer["spendable"], customer["spent"]) == (130, 120, 10)
    assert customer["purchase_count"] == 2 and customer["purchase_total"] == Decimal(235)
    assert await dbq.ledger_mismatches(program.name) == []

    status = engine.values("transaction_status", lambda r: r.key == b"1703545579")
    assert [(s["from_status"], s["to_status"]) for s in status] == [(None, "accepted")]
    assert status[0]["cause"] == {"event_id": "e-seed", "action": "checkout"}
    hooks = [
        r
        for r in engine.received["webhooks"]
        if json.loads(r.value)["data"].get("transaction_id") == "1703545579"
        or json.loads(r.value)["data"].get("transaction", {}).get("transaction_id") == "1703545579"
    ]
    types = [dict(r.headers)["webhook-type"].decode() for r in hooks]
    assert types == ["transaction.created", "points.burned", "points.earned", "transaction.accepted"]
    for record in hooks:
        headers = {name: value.decode() for name, value in record.headers}
        expected = "sha256=" + hmac.new(new.encode(), record.value, hashlib.sha256).hexdigest()
        assert headers["signature"] == expected
        # What a receiver does with the standardwebhooks package (README.md, Production).
        for secret in (new, old):
            assert StandardWebhook(secret).verify(record.value, headers) == json.loads(record.value)
        assert headers["webhook-id"] == json.loads(record.value)["id"]
        assert record.key == SEED_ITEM_LEVEL["customer"].encode()


async def test_transaction_level_pending_checkout(checkout_engine, program_factory, dbq: Db):
    program = program_factory(
        "pending",
        earn={"level": "transaction", "points_per_unit": 2, "rounding": "half_up"},
        pending_period={"seconds": 3600},
        metadata_schema={"type": "object", "required": ["channel"]},
    )
    async with checkout_engine(program) as engine:
        await engine.send(
            checkout("c1", "t1", "10.25", event_id="ok", metadata={"channel": "web"}, type="Buy")
        )
        await engine.send(checkout("c1", "t2", 5, event_id="bad-meta", metadata={"other": 1}))
        await engine.send(
            checkout(
                "c1",
                "t3",
                5,
                event_id="explicit-auto",
                auto_accept="2030-01-01T00:00:00Z",
                metadata={"channel": "pos"},
            )
            | {"occurred_at": "2026-01-01T00:00:00Z"}
        )
        await engine.send(checkout("c1", "t4", 5, event_id="no-meta"))
        # Partner override: points_rewarded is used as is, whatever the earn rules say.
        await engine.send(
            checkout("c1", "t5", 5, event_id="partner", points_rewarded=500, metadata={"channel": "app"})
        )
        results = await engine.results(5)
    assert results["ok"]["effects"]["points_pending"] == 21  # 10.25 * 2 = 20.5, half up
    assert results["bad-meta"]["outcome"] == "rejected"
    assert results["bad-meta"]["error"]["code"] == "invalid_metadata"
    # With a schema, absent metadata is validated as {}: the required field is missing.
    assert results["no-meta"]["error"]["code"] == "invalid_metadata"
    txn = await dbq.transaction(program.name, "t1")
    assert txn["status"] == "pending" and txn["type"] == "Buy" and txn["points_pending"] == 21
    assert txn["accepted_at"] is None and txn["auto_accept_at"] is not None
    t3 = await dbq.transaction(program.name, "t3")
    assert t3["auto_accept_at"].startswith("2030-01-01T00:00:00") and t3["created_at"].startswith(
        "2026-01-01"
    )
    assert await dbq.transaction(program.name, "t2") is None
    customer = await dbq.customer(program.name, "c1")
    # Pending: no score yet and purchase attributes untouched until accepted.
    assert results["partner"]["effects"]["points_pending"] == 500
    assert (customer["pending"], customer["score"], customer["purchase_count"]) == (531, 0, 0)


async def test_burn_larger_than_spendable_rejects_whole_checkout(checkout_engine, program_factory, dbq: Db):
    program = program_factory()
    async with checkout_engine(program) as engine:
        await engine.send(checkout("poor", "t-burn", 100, event_id="burn", points_burned=5))
        results = await engine.results(1)
    assert results["burn"]["outcome"] == "rejected"
    assert results["burn"]["error"]["code"] == "insufficient_points"
    assert results["burn"]["effects"]["points_burned"] == 0
    assert await dbq.transaction(program.name, "t-burn") is None
    assert await dbq.count("points_ledger", program.name) == 0
    assert await dbq.count("transactions", program.name) == 0


async def test_same_event_twice_counts_once(checkout_engine, program_factory, dbq: Db):
    program = program_factory()
    async with checkout_engine(program) as engine:
        body = checkout("twice", "t-dup", 40, event_id="dup-1")
        await engine.send(body)
        await engine.results(1)
        await engine.send(body)
        # Without an event id, a byte-identical redelivery is a duplicate too.
        anonymous = checkout("twice", "t-anon", 10)
        await engine.send(anonymous)
        await engine.send(anonymous)
        await engine.wait_for("event_results", 4)
    outcomes = [(v["event_id"], v["outcome"]) for v in engine.values("event_results")]
    assert outcomes.count(("dup-1", "applied")) == 1 and outcomes.count(("dup-1", "duplicate")) == 1
    anon = [o for e, o in outcomes if e.startswith("sha256:")]
    assert sorted(anon) == ["applied", "duplicate"]
    customer = await dbq.customer(program.name, "twice")
    assert customer["score"] == 50 and customer["purchase_count"] == 2
    assert await dbq.count("points_ledger", program.name) == 2


async def test_invalid_messages_go_to_dlq_and_partition_moves_on(checkout_engine, program_factory, dbq: Db):
    program = program_factory()
    async with checkout_engine(program) as engine:
        await engine.send(b"{not json", key="k", partition=0)
        await engine.send(
            {"action": "checkout", "event_id": "no-total", "customer": "c", "data": {"transaction_id": "x"}},
            partition=0,
        )
        await engine.send(
            {"action": "refund", "event_id": "wrong-topic", "customer": "c", "data": {"transaction_id": "x"}},
            partition=0,
        )
        await engine.send(checkout("after", "t-after", 12, event_id="after"), partition=0)
        results = await engine.results(3)
        dlq = await engine.wait_for("dlq", 3)
    assert results["after"]["outcome"] == "applied"
    assert results["no-total"]["error"]["code"] == "schema_violation"
    assert "total" in results["no-total"]["error"]["message"]
    assert results["wrong-topic"]["error"]["code"] == "unknown_action"
    by_code = {dict(r.headers)["error-code"].decode(): r for r in dlq}
    assert set(by_code) == {"malformed_json", "schema_violation", "unknown_action"}
    malformed = by_code["malformed_json"]
    assert malformed.value == b"{not json" and malformed.key == b"k"
    headers = dict(malformed.headers)
    assert headers["source-topic"].decode() == engine.topic
    assert headers["source-partition"] == b"0" and headers["source-offset"] == b"0"
    assert headers["error-message"]
    assert (await dbq.customer(program.name, "after"))["score"] == 12


async def test_guest_checkout_then_claim(checkout_engine, program_factory, dbq: Db):
    program = program_factory()
    async with checkout_engine(program) as engine:
        await engine.send(checkout(None, "guest-1", 70, event_id="g"))
        await engine.results(1)
        await engine.send(
            {
                "action": "checkout_claim",
                "customer": "finder",
                "event_id": "claim",
                "data": {"transaction_id": "guest-1"},
            }
        )
        await engine.send(
            {
                "action": "checkout_claim",
                "customer": "other",
                "event_id": "claim-again",
                "data": {"transaction_id": "guest-1"},
            }
        )
        results = await engine.results(3)
        await engine.wait_for("webhooks", 4)
    assert results["g"]["effects"]["points_earned"] == 0
    assert results["claim"]["outcome"] == "applied" and results["claim"]["effects"]["points_earned"] == 70
    assert results["claim-again"]["error"]["code"] == "already_claimed"
    txn = await dbq.transaction(program.name, "guest-1")
    assert txn["customer"] == "finder" and txn["guest"] is True and txn["points_earned"] == 70
    finder = await dbq.customer(program.name, "finder")
    assert (finder["score"], finder["purchase_count"], finder["purchase_total"]) == (70, 1, Decimal(70))
    assert (await dbq.customer(program.name, "other"))["score"] == 0
    types = [dict(r.headers)["webhook-type"].decode() for r in engine.received["webhooks"]]
    assert "transaction.claimed" in types


async def test_programs_are_kept_apart(checkout_engine, program_factory, dbq: Db):
    first = program_factory("a")
    second = program_factory("b", earn={"points_per_unit": 3})
    async with checkout_engine(first, second) as engine:
        await engine.send(checkout("same", "same-tx", 10, event_id="same-id"))
        await engine.send({**checkout("same", "same-tx", 10, event_id="same-id"), "program": second.name})
        await engine.send(checkout("same", "t", 10, event_id="ghost"), headers=[("program", b"ghost")])
        await engine.wait_for("event_results", 3)
    outcomes = {(v["program"], v["event_id"]): v for v in engine.values("event_results")}
    assert outcomes[(first.name, "same-id")]["outcome"] == "applied"
    assert outcomes[(second.name, "same-id")]["outcome"] == "applied"
    assert outcomes[("ghost", "ghost")]["error"]["code"] == "unknown_program"
    assert (await dbq.customer(first.name, "same"))["score"] == 10
    assert (await dbq.customer(second.name, "same"))["score"] == 30


async def test_consumer_killed_mid_batch_loses_and_doubles_nothing(
    checkout_engine, program_factory, dbq: Db, tmp_path: Path
):
    program = program_factory("crash")
    customers = [f"c{i}" for i in range(40)]
    total = 4000
    async with checkout_engine(program) as engine:
        await engine.stop_service()  # this test runs the consumer as a separate OS process
        await engine.send_many(
            [checkout(customers[n % 40], f"t{n}", n % 7 + 1, event_id=f"e{n}") for n in range(total)]
        )

        first = await engine.spawn("services.checkout", tmp_path, LOYALTY_BATCH_MAX_RECORDS="200")

        async def inbox() -> int:
            return await dbq.count("inbox", program.name)

        while await inbox() < 300:
            await asyncio.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        killed_at = await inbox()
        assert killed_at < total, "the consumer finished before it could be killed"

        second = await engine.spawn("services.checkout", tmp_path, LOYALTY_BATCH_MAX_RECORDS="200")
        try:
            for _ in range(1200):
                if (
                    await inbox() == total
                    and await dbq.pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
                ):
                    break
                await asyncio.sleep(0.05)
        finally:
            second.send_signal(signal.SIGTERM)
            await second.wait()

    assert await dbq.count("transactions", program.name) == total
    assert await dbq.count("points_ledger", program.name) == total
    expected: dict[str, int] = {}
    for n in range(total):
        expected[customers[n % 40]] = expected.get(customers[n % 40], 0) + n % 7 + 1
    rows = await dbq.pool.fetch("SELECT customer_id, score FROM customers WHERE program = $1", program.name)
    assert {r["customer_id"]: r["score"] for r in rows} == expected
    assert await dbq.ledger_mismatches(program.name) == []
    applied = {v["event_id"] for v in engine.values("event_results") if v["outcome"] == "applied"}
    assert applied == {f"e{n}" for n in range(total)}
