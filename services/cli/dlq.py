"""``loyalty dlq``: the dead-letter topic with its reason headers, and replays of chosen
records to their source topic once the cause is fixed.

A replay re-produces the record's original key and value to its source topic and partition
with the header
``dlq-replay: <dlq partition>:<offset>``. It is recorded in ``dlq_replays`` in the same
database transaction that waits for the broker's acknowledgement, so a record is replayed
once: a second replay of it is skipped (a crash between the acknowledgement and the commit
can replay it twice; the event's own id, when it has one, then makes the second a
duplicate)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from services.adapters.kafka import check_access, client_options
from services.cli.reader import Progress, read_topic
from services.config.settings import Settings

REPLAY_HEADER = "dlq-replay"


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class DlqRecord:
    partition: int
    offset: int
    timestamp: datetime
    key: bytes | None
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def code(self) -> str | None:
        return self.headers.get("error-code")

    @property
    def message(self) -> str | None:
        return self.headers.get("error-message")

    @property
    def source_topic(self) -> str | None:
        return self.headers.get("source-topic")

    @property
    def source(self) -> str | None:
        topic, partition = self.source_topic, self.headers.get("source-partition")
        if topic is None:
            return None
        return f"{topic}:{partition}:{self.headers.get('source-offset')}"

    def summary(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp.isoformat(),
            "key": _text(self.key),
            "error_code": self.code,
            "error_message": self.message,
            "source_topic": self.source_topic,
            "source_partition": _int(self.headers.get("source-partition")),
            "source_offset": _int(self.headers.get("source-offset")),
        }

    def detail(self) -> dict[str, Any]:
        return {**self.summary(), "value": _text(self.value), "headers": dict(self.headers)}


def _int(value: str | None) -> int | None:
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def parse_ref(ref: str) -> tuple[int, int]:
    """``PARTITION:OFFSET`` -> (partition, offset)."""
    partition, sep, offset = ref.partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise ValueError(f"{ref!r}: expected PARTITION:OFFSET, e.g. 0:42")
    return int(partition), int(offset)


async def read_dlq(
    settings: Settings,
    *,
    codes: Sequence[str] = (),
    source_topic: str | None = None,
    refs: Sequence[tuple[int, int]] = (),
    progress: Progress | None = None,
) -> list[DlqRecord]:
    """The DLQ records matching every filter given, in (partition, offset) order."""
    wanted = set(refs)
    partitions = {p for p, _ in wanted} if wanted else None
    found = []
    async with contextlib.aclosing(read_topic(settings, settings.topics.dlq, progress, partitions)) as rs:
        async for r in rs:
            record = DlqRecord(
                partition=r.partition,
                offset=r.offset,
                timestamp=datetime.fromtimestamp(r.timestamp / 1000, UTC),
                key=r.key,
                value=r.value or b"",
                headers={k: v.decode("utf-8", errors="replace") for k, v in r.headers},
            )
            if wanted and (record.partition, record.offset) not in wanted:
                continue
            if codes and record.code not in codes:
                continue
            if source_topic and record.source_topic != source_topic:
                continue
            found.append(record)
    return sorted(found, key=lambda d: (d.partition, d.offset))


@dataclass
class ReplayReport:
    replayed: list[DlqRecord] = field(default_factory=list)
    already: list[DlqRecord] = field(default_factory=list)  # replayed before: skipped
    unreplayable: list[tuple[DlqRecord, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "replayed": [{**r.summary(), "replayed_to": r.source_topic} for r in self.replayed],
            "already_replayed": [r.summary() for r in self.already],
            "skipped": [{**r.summary(), "why": why} for r, why in self.unreplayable],
        }


async def replayed_refs(conn: asyncpg.Connection, topic: str) -> set[tuple[int, int]]:
    rows = await conn.fetch('SELECT partition, "offset" FROM dlq_replays WHERE dlq_topic = $1', topic)
    return {(r["partition"], r["offset"]) for r in rows}


async def replay(
    settings: Settings, conn: asyncpg.Connection, records: Sequence[DlqRecord], dry_run: bool = False
) -> ReplayReport:
    """Re-produce each record to its source topic, once (see the module's docstring)."""
    report = ReplayReport()
    topic = settings.topics.dlq
    done = await replayed_refs(conn, topic)
    todo = []
    for record in records:
        if (record.partition, record.offset) in done:
            report.already.append(record)
        elif not record.source_topic:
            report.unreplayable.append((record, "no source-topic header"))
        elif record.source_topic == topic:
            report.unreplayable.append((record, "its source is the DLQ itself"))
        else:
            todo.append(record)
    if dry_run or not todo:
        report.replayed = todo
        return report
    await check_access(settings)
    producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for record in todo:
            async with conn.transaction():
                claimed = await conn.fetchval(
                    """
                    INSERT INTO dlq_replays (dlq_topic, partition, "offset") VALUES ($1, $2, $3)
                    ON CONFLICT DO NOTHING RETURNING true
                    """,
                    topic,
                    record.partition,
                    record.offset,
                )
                if not claimed:  # a concurrent replay took it
                    report.already.append(record)
                    continue
                assert record.source_topic is not None
                # Its source partition, where the original was (and its key's later events are).
                await producer.send_and_wait(
                    record.source_topic,
                    record.value,
                    key=record.key,
                    partition=_int(record.headers.get("source-partition")),
                    headers=[(REPLAY_HEADER, record.ref.encode())],
                )
            report.replayed.append(record)
    finally:
        await producer.stop()
    return report
