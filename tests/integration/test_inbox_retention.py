"""Inbox retention (issue 13): keys past ``inbox_retention_seconds`` are purged in bounded
batches; idempotency holds within the retention."""

from __future__ import annotations

import pytest

from services.adapters.postgres import create_pool
from services.adapters.relay import OutboxRelay
from services.config.settings import Settings
from tests.integration.conftest import Db
from tests.integration.test_checkout_ingestion import checkout

pytestmark = pytest.mark.integration


async def test_inbox_keys_past_retention_are_purged_recent_kept(
    kafka_bootstrap, database_url, program_factory, dbq: Db
):
    program = program_factory("inbox-purge").name
    await dbq.pool.execute(
        """
        INSERT INTO inbox (program, event_key, action, source, received_at)
        SELECT $1, 'old-' || n, 'checkout', 'test', now() - interval '2 days' FROM generate_series(1, 25) n
        UNION ALL
        SELECT $1, 'recent-' || n, 'checkout', 'test', now() - interval '1 hour' FROM generate_series(1, 5) n
        """,
        program,
    )
    settings = Settings(
        database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap, inbox_retention_seconds=86400
    )
    pool = await create_pool(settings)
    try:
        assert await OutboxRelay(settings, pool).purge_inbox() >= 25
        left = await dbq.pool.fetch(
            "SELECT event_key FROM inbox WHERE program = $1 ORDER BY event_key", program
        )
        assert [r["event_key"] for r in left] == [f"recent-{n}" for n in range(1, 6)]
    finally:
        await pool.close()


async def test_a_redelivery_within_retention_is_a_duplicate(checkout_engine, program_factory, dbq: Db):
    program = program_factory("inbox-retention")
    # A short retention, with the purge running in the relay's loop: keys younger than it stay.
    engine = checkout_engine(program, inbox_retention_seconds=3600)
    async with engine:
        await engine.send(checkout("c", "t1", 10, event_id="kept"))
        await engine.send(checkout("c", "t2", 10, event_id="expired"))
        await engine.final_results(["kept", "expired"])
        # "expired" was received past the retention: the purge drops its key.
        await dbq.pool.execute(
            "UPDATE inbox SET received_at = now() - interval '2 hours' WHERE program = $1 AND event_key = $2",
            program.name,
            "expired",
        )
        (process,) = engine.processes.values()
        assert process.relay is not None
        assert await process.relay.purge_inbox() >= 1
        assert await dbq.count("inbox", program.name) == 1

        await engine.send(checkout("c", "t1", 10, event_id="kept"))
        await engine.wait_for("event_results", 3)
    outcomes = [(v["event_id"], v["outcome"]) for v in engine.values("event_results")]
    assert outcomes[-1] == ("kept", "duplicate")
    assert (await dbq.customer(program.name, "c"))["score"] == 20
