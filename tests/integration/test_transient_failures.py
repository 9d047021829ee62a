"""A database outage is transient: nothing is skipped, lost or doubled, and processing
resumes by itself when the database is back."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
from aiokafka import AIOKafkaConsumer

from services.adapters.outbox_frames import Message, pack, unpack
from services.adapters.postgres import create_pool
from services.adapters.relay import OutboxRelay
from services.adapters.repository import write_outbox
from services.admin import create_topics
from services.config.settings import Settings
from services.service_layer.actions import checkout_ingestion
from services.service_layer.messages import OutboxMessage
from tests.harness import Engine
from tests.integration.conftest import Db
from tests.integration.test_checkout_ingestion import checkout
from tests.proxy import CuttableProxy

pytestmark = pytest.mark.integration


async def test_database_outage_is_retried_without_loss(
    kafka_bootstrap, database_url, program_factory, dbq: Db
):
    parts = urlsplit(database_url)
    proxy = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    via_proxy = urlunsplit(parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"))
    program = program_factory("outage")
    engine = Engine(kafka_bootstrap, via_proxy, [checkout_ingestion()], [program], retry_max_seconds=0.5)
    async with engine:
        await engine.send(checkout("steady", "before", 10, event_id="before"))
        await engine.results(1)

        await proxy.cut()
        await engine.send_many(
            [checkout("steady", f"during-{n}", 1, event_id=f"during-{n}") for n in range(20)]
        )
        await asyncio.sleep(2)
        assert len(engine.received["event_results"]) == 1, "nothing can be applied while the database is down"

        await proxy.restore()
        # At-least-once: a result may come twice after the outage, so wait for each event.
        results = await engine.final_results(["before"] + [f"during-{n}" for n in range(20)], timeout=60)
    await proxy.cut()

    assert all(results[f"during-{n}"]["outcome"] == "applied" for n in range(20))
    customer = await dbq.customer(program.name, "steady")
    assert customer["score"] == 30 and customer["purchase_count"] == 21
    assert await dbq.count("points_ledger", program.name) == 21
    assert await dbq.ledger_mismatches(program.name) == []


async def test_rows_for_a_missing_topic_do_not_block_other_topics(checkout_engine, program_factory, dbq: Db):
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    program = program_factory("missing-topic")
    engine = checkout_engine(program)
    lanes = engine.settings.relay_lanes
    # One stranded row in every lane, so that any claim meets one.
    await dbq.pool.execute(
        "INSERT INTO outbox (lane, topics, frames)"
        " SELECT lane, ARRAY[$1], $3 FROM generate_series(0, $2 - 1) lane",
        missing,
        lanes,
        pack([OutboxMessage(missing, b"k", b"v")]),
    )
    try:
        async with engine:
            await engine.send(checkout("unblocked", "t1", 10, event_id="flows"))
            results = await engine.results(1, timeout=60)
        assert results["flows"]["outcome"] == "applied"
        stranded = await dbq.pool.fetchval(
            "SELECT count(*) FROM outbox WHERE $1 = ANY(topics) AND published_at IS NULL", missing
        )
        assert stranded == lanes, "rows for a missing topic are kept, not dropped"
    finally:
        await dbq.pool.execute("DELETE FROM outbox WHERE $1 = ANY(topics)", missing)


async def test_relay_purges_published_rows_past_retention_only(kafka_bootstrap, database_url, dbq: Db):

    topic = f"purge-{uuid.uuid4().hex[:8]}"
    await dbq.pool.execute(
        """
        INSERT INTO outbox (lane, topics, frames, published_at)
        SELECT 0, ARRAY[$1], f, p
        FROM unnest($2::bytea[], ARRAY[now() - interval '2 days', now() - interval '1 hour', NULL])
             AS r(f, p)
        """,
        topic,
        [pack([OutboxMessage(topic, key, b"v")]) for key in (b"old", b"recent", b"unpublished")],
    )
    settings = Settings(
        database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap, outbox_retention_seconds=86400
    )
    pool = await create_pool(settings)
    try:
        assert await OutboxRelay(settings, pool).purge() >= 1
        left = await dbq.pool.fetch(
            "SELECT topics, frames FROM outbox WHERE $1 = ANY(topics) ORDER BY id", topic
        )
        assert [unpack(r["topics"], r["frames"])[0][1] for r in left] == [b"recent", b"unpublished"]
    finally:
        await pool.close()
        await dbq.pool.execute("DELETE FROM outbox WHERE $1 = ANY(topics)", topic)


async def test_concurrent_relays_publish_each_row_once_in_key_order(kafka_bootstrap, database_url, dbq: Db):
    topic = f"relays-{uuid.uuid4().hex[:8]}"
    await create_topics(Settings(kafka_bootstrap_servers=kafka_bootstrap), [topic], 3)
    keys, per_key = 40, 50
    # As the consumers write them: a batch per n, each packed in one row per lane.
    async with dbq.pool.acquire() as conn:
        for n in range(1, per_key + 1):
            messages = [
                OutboxMessage(topic, f"k{k}".encode(), f"k{k}:{n}".encode()) for k in range(1, keys + 1)
            ]
            await write_outbox(conn, messages, 32)
    # Much contention: small claims of every lane by eight relays at once.
    settings = Settings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        relay_batch=7,
        relay_lanes_per_claim=32,
        relay_idle_seconds=0.001,
    )
    pool = await create_pool(settings, size=10)
    relays = [OutboxRelay(settings, pool) for _ in range(8)]
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    try:
        for relay in relays:
            await relay.start()
        for _ in range(600):
            if not await dbq.pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM outbox WHERE $1 = ANY(topics) AND published_at IS NULL)", topic
            ):
                break
            await asyncio.sleep(0.05)
        await consumer.start()
        seen: dict[str, list[int]] = {}
        total = 0
        while total < keys * per_key:
            for records in (await consumer.getmany(timeout_ms=2000)).values():
                for record in records:
                    key, n = record.value.decode().split(":")
                    seen.setdefault(key, []).append(int(n))
                    total += 1
        extra = await consumer.getmany(timeout_ms=1000)
        assert not any(extra.values()), "a row was published twice"
        assert all(ns == list(range(1, per_key + 1)) for ns in seen.values()) and len(seen) == keys
    finally:
        await consumer.stop()
        for relay in relays:
            await relay.stop()
        await pool.close()
        await dbq.pool.execute("DELETE FROM outbox WHERE $1 = ANY(topics)", topic)


async def test_a_relay_stopped_during_a_claim_finishes_it_and_publishes_each_row_once(
    kafka_bootstrap, database_url, dbq: Db
):
    """A graceful stop waits for the claim under way (cancelled between the broker's
    acknowledgement and the commit, it would be published again at the next start) and for
    rows committed while it stops."""
    topic = f"stopping-{uuid.uuid4().hex[:8]}"
    await create_topics(Settings(kafka_bootstrap_servers=kafka_bootstrap), [topic], 3)
    settings = Settings(
        database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap, relay_idle_seconds=60
    )
    async with dbq.pool.acquire() as conn:
        await write_outbox(conn, [OutboxMessage(topic, b"k", b"first")], 32)
    pool = await create_pool(settings)
    relay = OutboxRelay(settings, pool)
    sending, acknowledged = asyncio.Event(), asyncio.Event()
    send = relay._send

    async def held_send(messages: list[Message]) -> None:
        sending.set()
        await send(messages)
        await acknowledged.wait()  # acknowledged, not yet deleted and committed

    relay._send = held_send  # type: ignore[method-assign]
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    try:
        await relay.start()
        await asyncio.wait_for(sending.wait(), 30)
        stopping = asyncio.create_task(relay.stop())
        await asyncio.sleep(0.1)
        # Committed while the relay stops (a consumer's last batch): published before it ends.
        async with dbq.pool.acquire() as conn:
            await write_outbox(conn, [OutboxMessage(topic, b"k", b"second")], 32)
        acknowledged.set()
        await asyncio.wait_for(stopping, 30)
        assert not await dbq.pool.fetchval("SELECT count(*) FROM outbox WHERE $1 = ANY(topics)", topic)

        # The next start has nothing to publish again.
        relay = OutboxRelay(settings, pool)
        await relay.start()
        relay.notify()
        await asyncio.sleep(0.5)
        await relay.stop()
        await consumer.start()
        values: list[bytes] = []
        while len(values) < 2:
            for records in (await consumer.getmany(timeout_ms=2000)).values():
                values += [r.value for r in records]
        extra = await consumer.getmany(timeout_ms=1000)
        assert values == [b"first", b"second"] and not any(extra.values())
    finally:
        await consumer.stop()
        await pool.close()
        await dbq.pool.execute("DELETE FROM outbox WHERE $1 = ANY(topics)", topic)
