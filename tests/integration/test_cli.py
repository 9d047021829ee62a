"""The ``loyalty`` operator command on the real broker and database: the DLQ (list, show,
replay once), parked events (list, expire), the outbox status, forgetting inbox keys; each in
its ``--json`` form, as scripts use it, on the test's own topics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import asyncpg
import pytest
from typer.testing import CliRunner

from services.adapters.repository import write_outbox
from services.admin import create_topics
from services.cli.dlq import REPLAY_HEADER
from services.cli.main import app
from services.cli.reader import read_topic
from services.config.settings import Settings, Topics
from services.service_layer.actions import checkout_ingestion, pending_lifecycle
from services.service_layer.messages import OutboxMessage
from tests.harness import ROOT, Engine, make_program
from tests.integration.conftest import Db

pytestmark = pytest.mark.integration


async def loyalty(settings: Settings, *args: str, code: int = 0) -> Any:
    """Run ``loyalty ARGS --json`` (in a thread: the command runs its own event loop); its
    stdout parsed as JSON."""
    result = await asyncio.to_thread(CliRunner().invoke, app, [*args, "--json"], obj=settings)
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    if code:
        return None
    # The engine under test runs in this process and logs to the same stdout: the command's
    # document is the lines from "{" to "}" (test_console_script checks the real stdout).
    lines = result.stdout.splitlines()
    start, end = lines.index("{"), len(lines) - lines[::-1].index("}")
    return json.loads("\n".join(lines[start:end]))


def checkout(customer: str, tid: str, total: Any, event_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "action": "checkout",
        "event_id": event_id,
        "customer": customer,
        "data": {"transaction_id": tid, "total": total},
        **extra,
    }


async def source_records(settings: Settings, topic: str) -> list[Any]:
    async with contextlib.aclosing(read_topic(settings, topic)) as records:
        return [r async for r in records]


async def test_dlq_list_show_and_replay_once(kafka_bootstrap, database_url, db: asyncpg.Pool):
    program = make_program(f"dlq-{uuid.uuid4().hex[:6]}")
    async with Engine(kafka_bootstrap, database_url, [checkout_ingestion()], [program]) as engine:
        settings = engine.settings
        await engine.send(b"{not json", key="k", partition=0)
        await engine.send(
            {"action": "checkout", "event_id": "no-total", "customer": "c", "data": {"transaction_id": "x"}},
            partition=0,
        )
        await engine.wait_for("dlq", 2)

        listed = await loyalty(settings, "dlq", "list")
        assert listed["topic"] == settings.topics.dlq and listed["total"] == 2
        assert listed["by_code"] == {"malformed_json": 1, "schema_violation": 1}
        by_code = {r["error_code"]: r for r in listed["records"]}
        malformed = by_code["malformed_json"]
        assert malformed["key"] == "k" and malformed["source_topic"] == engine.topic
        assert (malformed["source_partition"], malformed["source_offset"]) == (0, 0)
        assert "total" in by_code["schema_violation"]["error_message"]
        only = await loyalty(settings, "dlq", "list", "--code", "schema_violation")
        assert [r["error_code"] for r in only["records"]] == ["schema_violation"]
        assert (await loyalty(settings, "dlq", "list", "--source-topic", "elsewhere"))["total"] == 0
        assert len((await loyalty(settings, "dlq", "list", "--limit", "1"))["records"]) == 1

        shown = await loyalty(settings, "dlq", "show", malformed["ref"])
        assert shown["value"] == "{not json" and shown["key"] == "k"
        assert shown["headers"]["error-code"] == "malformed_json"
        assert shown["headers"]["source-topic"] == engine.topic
        await loyalty(settings, "dlq", "show", "9:999", code=1)

        # A dry run replays nothing.
        dry = await loyalty(settings, "dlq", "replay", "--code", "malformed_json", "--dry-run")
        assert [r["ref"] for r in dry["replayed"]] == [malformed["ref"]]
        assert (
            await db.fetchval("SELECT count(*) FROM dlq_replays WHERE dlq_topic = $1", settings.topics.dlq)
            == 0
        )

        replayed = await loyalty(settings, "dlq", "replay", malformed["ref"], "5:5")
        assert [r["ref"] for r in replayed["replayed"]] == [malformed["ref"]]
        assert replayed["not_found"] == ["5:5"]
        # On its source topic again: original key and value, marked with the DLQ position.
        again = [r for r in await source_records(settings, engine.topic) if r.headers]
        assert [(r.partition, r.key, r.value) for r in again] == [(0, b"k", b"{not json")]
        assert dict(again[0].headers)[REPLAY_HEADER] == malformed["ref"].encode()
        # The cause is not fixed: the engine dead-letters it again, from its new offset.
        await engine.wait_for("dlq", 3)
        third = dict(engine.received["dlq"][2].headers)
        assert third["error-code"] == b"malformed_json"
        assert third["source-offset"] == str(again[0].offset).encode()

        # Idempotent: a record replayed once is not replayed again.
        twice = await loyalty(settings, "dlq", "replay", malformed["ref"])
        assert twice["replayed"] == [] and [r["ref"] for r in twice["already_replayed"]] == [malformed["ref"]]
        after = [r for r in await source_records(settings, engine.topic) if r.headers]
        assert len(after) == 1


async def test_parked_list_and_expire(kafka_bootstrap, database_url, dbq: Db):
    program = make_program(f"park-{uuid.uuid4().hex[:6]}", pending_period={"seconds": 3600})
    handlers = [checkout_ingestion(), pending_lifecycle()]
    async with Engine(kafka_bootstrap, database_url, handlers, [program]) as engine:
        settings = engine.settings
        for n in (1, 2):
            await engine.send(
                {
                    "action": "checkout_accept",
                    "event_id": f"acc-{n}",
                    "customer": "c",
                    "data": {"transaction_id": f"T{n}"},
                },
                topic="lifecycle",
            )
        await engine.wait_for("event_results", 2)
        assert await dbq.count("parked_events", program.name) == 2

        listed = await loyalty(settings, "parked", "list", "--program", program.name)
        assert [(g["program"], g["reason"], g["count"]) for g in listed["groups"]] == [
            (program.name, "awaiting_checkout", 2)
        ]
        assert {e["event_id"] for e in listed["events"]} == {"acc-1", "acc-2"}
        assert all(e["age_seconds"] >= 0 for e in listed["events"])
        older = await loyalty(settings, "parked", "list", "--program", program.name, "--older-than", "1h")
        assert older == {"groups": [], "events": []}
        none = await loyalty(
            settings, "parked", "list", "--program", program.name, "--reason", "awaiting_reject"
        )
        assert none["groups"] == []

        # Nothing chosen: refused rather than expiring everything.
        await loyalty(settings, "parked", "expire", code=2)
        dry = await loyalty(settings, "parked", "expire", "--program", program.name, "--dry-run")
        assert {e["event_id"] for e in dry["expired"]} == {"acc-1", "acc-2"} and dry["dry_run"]
        assert await dbq.count("parked_events", program.name) == 2
        kept = await loyalty(settings, "parked", "expire", "--program", program.name, "--older-than", "1d")
        assert kept["expired"] == []

        expired = await loyalty(settings, "parked", "expire", "--program", program.name, "--limit", "1")
        assert [e["event_id"] for e in expired["expired"]] == ["acc-1"]
        rest = await loyalty(settings, "parked", "expire", "--program", program.name)
        assert [e["event_id"] for e in rest["expired"]] == ["acc-2"]
        assert await dbq.count("parked_events", program.name) == 0
        # Their final results, published by the running consumers' relay; no webhook.
        finals = await engine.final_results(["acc-1", "acc-2"])
        for event_id in ("acc-1", "acc-2"):
            result = finals[event_id]
            assert (result["outcome"], result["error"]["code"]) == ("rejected", "parked_expired")
            assert result["action"] == "checkout_accept" and result["internal"] is False
        assert engine.received["webhooks"] == []


async def test_outbox_status_names_backlog_and_missing_topics(
    kafka_bootstrap, database_url, db: asyncpg.Pool
):
    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        topics=Topics().prefixed(f"t{tag}."),
    )
    await create_topics(settings)
    missing = f"t{tag}.not-created"
    # No relay runs in this test: the rows stay unpublished.
    async with db.acquire() as conn:
        await write_outbox(
            conn,
            [
                OutboxMessage(settings.topics.event_results, b"k", b"{}"),
                OutboxMessage(settings.topics.event_results, b"k", b"{}"),
                OutboxMessage(missing, b"k", b"{}"),
            ],
            settings.relay_lanes,
        )
    try:
        status = await loyalty(settings, "outbox", "status")
        topics = {t["topic"]: t for t in status["topics"]}
        assert topics[settings.topics.event_results]["unpublished"] == 2
        assert topics[settings.topics.event_results]["exists"] is True
        assert topics[missing]["unpublished"] == 1 and topics[missing]["exists"] is False
        assert missing in status["missing_topics"]
        assert settings.topics.event_results not in status["missing_topics"]
        assert status["unpublished"] >= 3 and status["oldest_unpublished_seconds"] >= 0
    finally:
        await db.execute("DELETE FROM outbox WHERE topics[1] LIKE $1", f"t{tag}.%")


async def test_inbox_forget_lets_an_unknown_program_event_apply(kafka_bootstrap, database_url, dbq: Db):
    known = make_program(f"known-{uuid.uuid4().hex[:6]}")
    late = make_program(f"late-{uuid.uuid4().hex[:6]}")  # configured only after the event came
    event = checkout("c1", "T1", 40, "late-1", program=late.name)
    other = checkout("c2", "T2", 10, "late-2", program=late.name)
    async with Engine(kafka_bootstrap, database_url, [checkout_ingestion()], [known]) as engine:
        settings = engine.settings
        await engine.send(event)
        await engine.send(other)
        await engine.send(checkout("c3", "T3", 5, "known-1"))
        results = await engine.results(3)
        assert results["late-1"]["error"]["code"] == "unknown_program"

        # The program is configured (a restart with the new programs file).
        await engine.stop_service()
        engine.programs[late.name] = late
        await engine.start_service()
        await engine.send(event)  # still a duplicate: its inbox key is taken
        await engine.wait_for("event_results", 4)
        assert engine.values("event_results")[-1]["outcome"] == "duplicate"

        dry = await loyalty(
            settings, "inbox", "forget", "--program", late.name, "--code", "unknown_program", "--dry-run"
        )
        assert [r["event_key"] for r in dry["forgotten"]] == ["late-1", "late-2"]
        forgotten = await loyalty(
            settings, "inbox", "forget", "--program", late.name, "--code", "unknown_program", "--since", "1h"
        )
        assert [r["event_key"] for r in forgotten["forgotten"]] == ["late-1", "late-2"]
        assert forgotten["forgotten"][0]["source"].startswith(engine.topic)

        await engine.send(event)
        await engine.wait_for("event_results", 5)
        assert engine.values("event_results")[-1]["outcome"] == "applied"
        assert (await dbq.customer(late.name, "c1"))["score"] == 40
        # Applied since: never forgotten again by code (it would then be applied twice).
        again = await loyalty(
            settings, "inbox", "forget", "--program", late.name, "--code", "unknown_program"
        )
        assert [r["event_key"] for r in again["forgotten"]] == []
        # By id: the known program's applied event (an operator's explicit choice).
        by_id = await loyalty(
            settings,
            "inbox",
            "forget",
            "--program",
            known.name,
            "--event-id",
            "known-1",
            "--event-id",
            "nope",
        )
        assert [r["event_key"] for r in by_id["forgotten"]] == ["known-1"]
        assert by_id["not_in_inbox"] == ["nope"]
        await loyalty(settings, "inbox", "forget", "--program", known.name, code=2)


def test_console_script_and_admin_module(database_url: str, kafka_bootstrap: str) -> None:
    env = {
        **os.environ,
        **Settings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap).as_env(),
    }
    loyalty_bin = os.path.join(os.path.dirname(sys.executable), "loyalty")
    command = [loyalty_bin] if os.path.exists(loyalty_bin) else [sys.executable, "-m", "services.cli"]
    done = subprocess.run([*command, "migrate", "--json"], cwd=ROOT, env=env, capture_output=True, check=True)
    assert json.loads(done.stdout) == {"applied": []}
    programs = subprocess.run(
        [*command, "check-programs", "--json"], cwd=ROOT, env=env, capture_output=True, check=True
    )
    assert "default" in json.loads(programs.stdout)["programs"]
    admin = subprocess.run(
        [sys.executable, "-m", "services.admin", "migrate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=True,
    )
    assert b"migrations applied" in admin.stdout
