"""Operational gauges (services/entrypoints/signals.py) on the real database and broker: the
outbox backlog, parked events by reason, due timers, consumer lag per partition."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import REGISTRY

from services.adapters.outbox_frames import pack
from services.entrypoints.signals import SignalsCollector
from services.service_layer.messages import OutboxMessage
from tests.integration.conftest import unique

pytestmark = pytest.mark.integration


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_database_gauges(db: asyncpg.Pool) -> None:
    program = unique("signals")
    async with db.acquire() as conn:
        outbox_id = await conn.fetchval(
            "INSERT INTO outbox (lane, topics, frames, created_at)"
            " VALUES (0, ARRAY[$1], $2, now() - interval '10 minutes') RETURNING id",
            f"{program}.absent-topic",
            pack([OutboxMessage(f"{program}.absent-topic", None, b"\x00")]),
        )
        await conn.executemany(
            "INSERT INTO parked_events (program, transaction_id, event_key, event_id, action, body,"
            " occurred_at, source, reason)"
            " VALUES ($1, 't1', $2, $2, 'checkout_accept', '{}', now(), 'x', $3)",
            [
                (program, "e1", "awaiting_checkout"),
                (program, "e2", "awaiting_checkout"),
                (program, "e3", "awaiting_reject"),
            ],
        )
    try:
        await SignalsCollector(db, lambda: [], 15).collect()
        assert (gauge("loyalty_outbox_unpublished") or 0) >= 1
        assert (gauge("loyalty_outbox_oldest_unpublished_seconds") or 0) >= 590
        assert gauge("loyalty_parked_events", program=program, reason="awaiting_checkout") == 2
        assert gauge("loyalty_parked_events", program=program, reason="awaiting_reject") == 1
        assert gauge("loyalty_timers_due") is not None
        assert abs((gauge("loyalty_signals_refreshed_timestamp_seconds") or 0) - time.time()) < 60
    finally:
        async with db.acquire() as conn:
            await conn.execute("DELETE FROM outbox WHERE id = $1", outbox_id)
            await conn.execute("DELETE FROM parked_events WHERE program = $1", program)
    await SignalsCollector(db, lambda: [], 15).collect()
    assert gauge("loyalty_parked_events", program=program, reason="awaiting_checkout") is None


async def test_consumer_lag_per_partition(checkout_engine, program_factory) -> None:
    program = program_factory("lag")
    # metrics_port only switches the collector on here (the process serves no port itself).
    async with checkout_engine(program, metrics_port=1, signals_interval_seconds=0.2) as engine:
        for n in range(6):
            await engine.send(
                {
                    "action": "checkout",
                    "customer": f"c{n}",
                    "event_id": f"e{n}",
                    "data": {"transaction_id": f"t{n}", "total": 10},
                }
            )
        await engine.results(6)
        group = f"{engine.settings.group_prefix}checkout-ingestion"
        topic = engine.input("checkouts")
        deadline = time.monotonic() + 20
        while True:
            lags = [
                gauge("loyalty_consumer_lag", group=group, topic=topic, partition=str(p)) for p in range(3)
            ]
            if lags == [0, 0, 0] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert lags == [0, 0, 0]


async def test_lag_of_a_consumer_behind(kafka_bootstrap: str) -> None:
    topic, group = unique("signals-lag"), unique("signals-group")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for n in range(5):
            await producer.send_and_wait(topic, b"x", partition=n % 2)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        await SignalsCollector(None, lambda: [(group, consumer)], 15).collect_lag()  # type: ignore[arg-type]
        assert gauge("loyalty_consumer_lag", group=group, topic=topic, partition="0") == 3
        assert gauge("loyalty_consumer_lag", group=group, topic=topic, partition="1") == 2
    finally:
        await consumer.stop()
