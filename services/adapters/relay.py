"""Outbox relay (docs/outbox.md): publishes unpublished outbox rows to Kafka and marks them.

Ordering per key with any number of relays: rows are grouped in lanes by a hash of
(topic, key); a relay publishes only lanes it holds with ``pg_try_advisory_xact_lock``, in id
order, and waits for every broker acknowledgement before marking the rows published and
releasing the lanes. Rows of one key are committed in id order (they are written under the
customer's row lock), so a late-committing row of another key in the same lane is simply
picked up by the next claim: nothing tails by id, so nothing is skipped. Delivery is
at-least-once: a crash between publish and mark re-publishes, in the same order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import struct
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder
from prometheus_client import Counter as Metric

from services.adapters.kafka import check_access, client_options, is_retryable_start_failure
from services.adapters.outbox_frames import Message, unpack
from services.adapters.postgres import Backoff, is_transient, retrying
from services.config.settings import Settings

log = structlog.get_logger(__name__)
PUBLISHED = Metric("loyalty_outbox_published_total", "Outbox rows published", ["topic"])
MISSING_TOPIC = Metric(
    "loyalty_outbox_missing_topic_total", "Claims that met a topic the broker lacks", ["topic"]
)
# A topic the broker does not know is set aside this long before it is looked up again.
_MISSING_TOPIC_RETRY_SECONDS = 60.0
_METADATA_TIMEOUT_SECONDS = 5.0
_LANE_LOCK_NAMESPACE = 7_240_002
_PURGE_EVERY_SECONDS = 60.0
_PURGE_BATCH = 10_000
# ctid batches: bounded work per statement, and concurrent relays skip each other's rows.
_PURGE = """
    DELETE FROM outbox WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM outbox
        WHERE published_at IS NOT NULL AND published_at < now() - make_interval(secs => $1)
        LIMIT $2 FOR UPDATE SKIP LOCKED))
"""
# Inbox retention (issue 13; docs/idempotency.md): keys past ``inbox_retention_seconds``, in
# the same bounded ctid batches, through the index on received_at; at most this many batches
# a run, so publishing goes on between runs of a large first purge.
_INBOX_PURGE_BATCHES_PER_RUN = 20
_PURGE_INBOX = """
    DELETE FROM inbox WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM inbox WHERE received_at < now() - make_interval(secs => $1)
        LIMIT $2 FOR UPDATE SKIP LOCKED))
"""

# Lanes are locked in one statement and their rows read in the next: under READ COMMITTED the
# read then takes its snapshot after the lock, so it sees every row the lane's previous holder
# marked published. (Locking and reading in one statement would read with a snapshot from
# before the lock, and publish again rows another relay had just published.) Only lanes with
# rows to publish are worth a lock: a claim of empty lanes would leave the others waiting for
# the next wake-up. One index probe per lane (outbox_unpublished), whatever the backlog.
_LOCK_LANES = """
    SELECT lane FROM (
        SELECT g.lane FROM generate_series(0, $4 - 1) AS g(lane)
        WHERE EXISTS (
            SELECT 1 FROM outbox o
            WHERE o.published_at IS NULL AND o.lane = g.lane AND NOT o.topics && $3::text[]
        )
        ORDER BY random()
    ) AS busy
    WHERE pg_try_advisory_xact_lock($1, lane)
    LIMIT $2
"""
# Rows in id order, as many as make up ``relay_batch`` messages (at least one row): a row holds
# one lane's messages of one batch (docs/outbox.md).
_CLAIM = """
    SELECT id, topics, frames FROM (
        SELECT id, topics, frames,
               sum(cardinality(topics)) OVER (ORDER BY id) - cardinality(topics) AS before
        FROM (
            SELECT id, topics, frames FROM outbox
            WHERE published_at IS NULL AND lane = ANY($1::int[]) AND NOT topics && $2::text[]
            ORDER BY id
            LIMIT $3
        ) AS unpublished
    ) AS claimed
    WHERE before < $3
    ORDER BY id
"""


_MURMUR_SEED = 0x9747B28C
_MURMUR_MIX = 0x5BD1E995
_U32 = 0xFFFFFFFF


@functools.lru_cache(maxsize=256)  # by key length: bounded, whatever keys a DLQ record carries
def _words(count: int) -> Any:
    return struct.Struct(f"<{count}I").unpack_from


def murmur2(key: bytes, mix: int = _MURMUR_MIX, u32: int = _U32) -> int:
    """The Java client's murmur2 (``Utils.murmur2``), as aiokafka's pure-Python one computes
    it, in half its instructions (cachegrind): the 4-byte words are read in one ``struct``
    call, not byte by byte, and only products are masked (XORs and shifts of 32-bit values
    stay 32-bit). An event's result and status change have keys of their own, so most keys
    are hashed once. (``mix`` and ``u32`` are parameters only to be locals.)"""
    length = len(key)
    words = length >> 2
    h = _MURMUR_SEED ^ length
    for k in _words(words)(key):
        k = (k * mix) & u32
        h = ((h * mix) & u32) ^ (((k ^ (k >> 24)) * mix) & u32)
    tail = length & 3
    if tail:
        rest = words << 2
        if tail == 3:
            h ^= key[rest + 2] << 16
        if tail >= 2:
            h ^= key[rest + 1] << 8
        h = ((h ^ key[rest]) * mix) & u32
    h ^= h >> 13
    h = (h * mix) & u32
    return h ^ (h >> 15)


@functools.lru_cache(maxsize=65_536)
def _key_hash(key: bytes) -> int:
    # A customer's key recurs (three webhooks an event).
    return murmur2(key) & 0x7FFFFFFF


def partition_of(key: bytes | None, partitions: Sequence[int]) -> int:
    """The partition aiokafka's default partitioner (the Java client's) gives ``key`` among
    ``partitions`` (sorted): a key lands where ``send`` would put it, whichever client
    published it; a message without a key anywhere."""
    if key is None:
        return random.choice(partitions)
    return partitions[_key_hash(key) % len(partitions)]


class OutboxRelay:
    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self.settings = settings
        self.pool = pool
        self.producer: AIOKafkaProducer | None = None
        self.wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._known_topics: set[str] = set()
        self._missing_topics: dict[str, float] = {}  # topic -> when to look it up again
        self._next_purge = 0.0
        self._next_inbox_purge = 0.0

    async def start(self) -> None:
        self.producer = producer = AIOKafkaProducer(
            **client_options(self.settings),
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=256 * 1024,
        )

        async def start_producer() -> None:
            await check_access(self.settings)  # a refused login stops start-up at once
            await producer.start()

        # The broker may not be up yet: any start failure is worth another try, but a refused
        # login or certificate (KafkaAccessError) is not.
        await retrying(
            "start_relay_producer", self.settings, start_producer, retry_on=is_retryable_start_failure
        )
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    def notify(self) -> None:
        self.wakeup.set()

    async def stop(self) -> None:
        """Finish the claim under way and publish what is left, then stop. Cancelled between
        the broker's acknowledgement and its commit, a claim would be published again at the
        next start: a graceful stop must not duplicate. The caller cancels it past the
        shutdown grace (a broker or database that stays away)."""
        if self._task is not None:
            self._stopping = True
            self.wakeup.set()
            await self._task
            self._task = None
        if self.producer is not None:
            await self.producer.stop()

    async def _run(self) -> None:
        backoff = Backoff(self.settings)
        while True:
            # Cleared before the claim, not after: a commit that wakes the relay while it
            # publishes makes it claim again at once instead of after relay_idle_seconds.
            self.wakeup.clear()
            last = self._stopping  # a claim begun once asked to stop
            try:
                published = await self.publish_once()
                if self.settings.outbox_retention_seconds > 0 and time.monotonic() >= self._next_purge:
                    await self.purge()
                if self.settings.inbox_retention_seconds > 0 and time.monotonic() >= self._next_inbox_purge:
                    await self.purge_inbox()
                backoff = Backoff(self.settings)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The broker or the database is away: nothing was marked, so retry later.
                log.warning("relay_failed_retrying", error=repr(exc), transient=is_transient(exc))
                await backoff.wait()
                continue
            # A claim takes every busy lane: short of a full claim, what is left came after its
            # snapshot, and a commit since then has set the wake-up. Asked to stop, the process's
            # consumers had committed their last batch: a claim begun since, short of full,
            # took all of it.
            if published < self.settings.relay_batch:
                if last:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), self.settings.relay_idle_seconds)

    async def purge(self) -> int:
        """Delete published rows past their retention; return how many."""
        self._next_purge = time.monotonic() + _PURGE_EVERY_SECONDS
        purged = 0
        while True:
            status = await self.pool.execute(_PURGE, self.settings.outbox_retention_seconds, _PURGE_BATCH)
            deleted = int(status.split()[-1])
            purged += deleted
            if deleted < _PURGE_BATCH:
                return purged

    async def purge_inbox(self) -> int:
        """Delete inbox keys past their retention, in bounded batches; return how many. When
        the run's batches are used up, the next run follows the next claim instead of a minute
        later."""
        self._next_inbox_purge = time.monotonic() + _PURGE_EVERY_SECONDS
        purged = 0
        for _ in range(_INBOX_PURGE_BATCHES_PER_RUN):
            status = await self.pool.execute(
                _PURGE_INBOX, self.settings.inbox_retention_seconds, _PURGE_BATCH
            )
            deleted = int(status.split()[-1])
            purged += deleted
            if deleted < _PURGE_BATCH:
                return purged
        self._next_inbox_purge = 0.0
        return purged

    def _set_aside(self) -> list[str]:
        now = time.monotonic()
        self._missing_topics = {t: until for t, until in self._missing_topics.items() if until > now}
        return list(self._missing_topics)

    async def _topics_exist(self, topics: set[str]) -> bool:
        """Look topics not seen yet up in the broker's metadata (one request for all of them);
        set aside those it lacks."""
        assert self.producer is not None
        unknown = topics - self._known_topics
        if not unknown:
            return True
        cluster = await asyncio.wait_for(self.producer.client.fetch_all_metadata(), _METADATA_TIMEOUT_SECONDS)
        existing = cluster.topics()
        self._known_topics |= unknown & existing
        missing = unknown - existing
        for topic in missing:
            # Its rows stay unpublished, in order, until the topic exists (admin setup).
            log.error("relay_topic_missing", topic=topic, retry_in=_MISSING_TOPIC_RETRY_SECONDS)
            MISSING_TOPIC.labels(topic).inc()
            self._missing_topics[topic] = time.monotonic() + _MISSING_TOPIC_RETRY_SECONDS
        return not missing

    async def publish_once(self) -> int:
        """Publish one claim of rows; return how many messages they held."""
        assert self.producer is not None
        s = self.settings
        async with self.pool.acquire() as conn, conn.transaction():
            # The outbox is a queue: between two vacuums it is mostly dead rows, and its
            # statistics swing with them. The planner then chose sequential scans of those
            # dead pages over the index probes below, 2.4 ms a statement (pg_stat_statements
            # at steady load) where the probes take a few hundredths; every statement of a
            # claim is an index probe (docs/outbox.md).
            await conn.execute("SET LOCAL enable_seqscan = off")
            lanes = [
                r["lane"]
                for r in await conn.fetch(
                    _LOCK_LANES,
                    _LANE_LOCK_NAMESPACE,
                    s.relay_lanes_per_claim,
                    self._set_aside(),
                    s.relay_lanes,
                )
            ]
            if not lanes:
                return 0
            rows = await conn.fetch(_CLAIM, lanes, self._set_aside(), s.relay_batch)
            if not rows:
                return 0
            if not await self._topics_exist({topic for row in rows for topic in row["topics"]}):
                return 0  # claim again without the missing topics; nothing was sent
            messages = [message for row in rows for message in unpack(row["topics"], row["frames"])]
            await self._send(messages)
            ids = [row["id"] for row in rows]
            if s.outbox_retention_seconds > 0:
                await conn.execute("UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", ids)
            else:
                # No retention: a published row is deleted at once, which writes far less
                # than a second version of it and needs no purge.
                await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", ids)
        for topic, count in Counter(message[0] for message in messages).items():
            PUBLISHED.labels(topic).inc(count)
        return len(messages)

    async def _send(self, messages: list[Message]) -> None:
        """Send ``messages`` in order per partition, a record batch per partition filled
        directly (``send`` per message costs a future, a partitioner and an accumulator call
        each); return once the broker acknowledged all of them."""
        assert self.producer is not None
        producer = self.producer
        partitions: dict[str, list[int]] = {}
        batches: dict[tuple[str, int], BatchBuilder] = {}
        sent: list[asyncio.Future[Any]] = []
        for topic, key, value, headers in messages:
            if topic not in partitions:
                partitions[topic] = sorted(await producer.partitions_for(topic))
            target = (topic, partition_of(key, partitions[topic]))
            batch = batches.get(target)
            if batch is None:
                batch = batches[target] = producer.create_batch()
            if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
                # Full: send it (the next one of its partition follows it), start another.
                sent.append(await producer.send_batch(batch, target[0], partition=target[1]))
                batch = batches[target] = producer.create_batch()
                batch.append(timestamp=None, key=key, value=value, headers=headers)
        for (topic, partition), batch in batches.items():
            sent.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*sent)
