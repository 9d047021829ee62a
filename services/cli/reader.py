"""Bounded reads of a topic for operator commands: a group-less consumer (no offsets are
committed, no group is joined) reads every partition from its beginning up to the end
offsets taken at the start, then stops. Records produced meanwhile are not read."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.adapters.kafka import check_access, client_options
from services.config.settings import Settings

Progress = Callable[[int, int], None]  # (records read so far, records to read)


async def topic_names(settings: Settings) -> set[str]:
    """The broker's topic names."""
    await check_access(settings)
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def topic_partitions(settings: Settings, topic: str) -> list[int]:
    """The partition numbers of ``topic``; none when it does not exist."""
    await check_access(settings)
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            return []
        described = await admin.describe_topics([topic])
        return sorted(p["partition"] for t in described if t["topic"] == topic for p in t["partitions"])
    finally:
        await admin.close()


async def read_topic(
    settings: Settings,
    topic: str,
    progress: Progress | None = None,
    partitions: set[int] | None = None,
) -> AsyncGenerator[Any, None]:
    """Every record of ``topic`` (of ``partitions`` when given) up to its end offsets at the
    start, partition by partition as the broker returns them. Nothing when the topic does not
    exist."""
    numbers = await topic_partitions(settings, topic)
    tps = [TopicPartition(topic, p) for p in numbers if partitions is None or p in partitions]
    if not tps:
        if progress:
            progress(0, 0)
        return
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if end[tp] > begin[tp]}
        total = sum(end[tp] - begin[tp] for tp in tps)
        done = 0
        if progress:
            progress(0, total)
        if not pending:
            return
        consumer.assign(sorted(pending, key=lambda tp: tp.partition))
        await consumer.seek_to_beginning(*pending)
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=1000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < end[tp]:
                        done += 1
                        yield record
            for tp in list(pending):
                if await consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
            if progress:
                progress(min(done, total), total)
    finally:
        await consumer.stop()
