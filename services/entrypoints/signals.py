"""Operational gauges (issue 13), refreshed by every consumer process every
``signals_interval_seconds`` (15 s) and served on its ``/metrics``:

- the outbox backlog: unpublished rows and the age of the oldest (the relay is behind, or a
  topic is missing: services/adapters/docs/outbox.md);
- parked events by program and reason (services/service_layer/docs/parking.md);
- pending transactions past their due time (the timer is behind: docs/timers.md);
- this process's consumer lag per partition: the partition's high watermark minus the
  consumer's position, from its own aiokafka consumers (no extra connection).

The database gauges are the same for every process of a deployment (one database): a
dashboard takes their ``max``. Three cheap queries (two of them use partial indexes) per
interval; a failed refresh is logged and the previous values stay."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import structlog
from prometheus_client import Gauge

log = structlog.get_logger(__name__)

OUTBOX_UNPUBLISHED = Gauge("loyalty_outbox_unpublished", "Outbox rows not yet published")
OUTBOX_OLDEST_SECONDS = Gauge(
    "loyalty_outbox_oldest_unpublished_seconds", "Age of the oldest unpublished outbox row (0: none)"
)
PARKED_EVENTS = Gauge("loyalty_parked_events", "Parked events by program and reason", ["program", "reason"])
TIMERS_DUE = Gauge("loyalty_timers_due", "Pending transactions past their due time, not yet transitioned")
CONSUMER_LAG = Gauge(
    "loyalty_consumer_lag",
    "Records behind the partition's high watermark, per assigned partition of this process",
    ["group", "topic", "partition"],
)
READY = Gauge("loyalty_ready", "1 while the process's /readyz answers ready, else 0", ["service"])
SIGNALS_REFRESHED = Gauge(
    "loyalty_signals_refreshed_timestamp_seconds", "When these gauges were last refreshed"
)

OUTBOX_SQL = (
    "SELECT coalesce(sum(cardinality(topics)), 0), extract(epoch FROM now() - min(created_at))"
    " FROM outbox WHERE published_at IS NULL"
)
PARKED_SQL = "SELECT program, reason, count(*) FROM parked_events GROUP BY program, reason"
TIMERS_SQL = "SELECT count(*) FROM transactions WHERE status = 'pending' AND auto_accept_at <= now()"

# (consumer group, the subscriber's aiokafka consumer or None while it is not started)
Consumers = Callable[[], Sequence[tuple[str, Any]]]


class SignalsCollector:
    """A peer of the consumers (services/entrypoints/bootstrap.py): started after them,
    stopped before them."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        consumers: Consumers,
        interval: float,
        service: str = "",
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self.pool = pool
        self.consumers = consumers
        self.interval = interval
        self.service = service
        self.ready = ready
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="signals")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self.collect()
            await asyncio.sleep(self.interval)

    async def collect(self) -> None:
        if self.ready is not None:
            READY.labels(self.service).set(1 if self.ready() else 0)
        for part in (self.collect_database, self.collect_lag):
            try:
                await asyncio.wait_for(part(), timeout=max(self.interval, 1.0))
            except Exception as exc:  # never fatal: the gauges keep their last values
                log.warning("signals_refresh_failed", part=part.__name__, error=repr(exc))
        SIGNALS_REFRESHED.set(time.time())

    async def collect_database(self) -> None:
        async with self.pool.acquire() as conn:
            unpublished, oldest = await conn.fetchrow(OUTBOX_SQL)
            parked = await conn.fetch(PARKED_SQL)
            due = await conn.fetchval(TIMERS_SQL)
        OUTBOX_UNPUBLISHED.set(unpublished)
        OUTBOX_OLDEST_SECONDS.set(float(oldest or 0))
        PARKED_EVENTS.clear()
        for program, reason, count in parked:
            PARKED_EVENTS.labels(program, reason).set(count)
        TIMERS_DUE.set(due)

    async def collect_lag(self) -> None:
        lags: dict[tuple[str, str, str], int] = {}
        for group, consumer in self.consumers():
            if consumer is None:
                continue
            partitions = list(consumer.assignment())
            if not partitions:
                continue
            # Asked of the broker (one request), not the last fetch's high watermark, which
            # stops moving while a slow consumer's fetch buffer is full.
            ends = await consumer.end_offsets(partitions)
            for tp in partitions:
                with contextlib.suppress(Exception):  # a partition being revoked meanwhile
                    position = await asyncio.wait_for(consumer.position(tp), 1.0)
                    lags[(group, tp.topic, str(tp.partition))] = max(ends[tp] - position, 0)
        CONSUMER_LAG.clear()
        for labels, lag in lags.items():
            CONSUMER_LAG.labels(*labels).set(lag)
