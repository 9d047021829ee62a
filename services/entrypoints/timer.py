"""The pending-period timer (docs/timers.md), a peer of the pending-lifecycle consumer in its
process (``pending_timer``), sharing the process's pool and the lifecycle pipeline.

Every ``timer_poll_seconds`` it sweeps due pending transactions, in batches: it reads the
due ones, claims them with ``FOR UPDATE SKIP LOCKED`` (transactions come first in the global
lock order), so replicas split the work instead of waiting on each other, then feeds one
internal ``auto_expire`` event per claimed transaction through the same pipeline as consumed
events: inbox key ``auto:<id>:<due time>``, guarded transition (still pending and due, under
the row lock), outbox rows in the same transaction.

It also expires parked events older than their program's ``parked_max_age``
(services/service_layer/docs/parking.md): ``services.adapters.parked_expiry.expire_parked``
claims their transactions with ``FOR UPDATE SKIP LOCKED`` in batches of ``timer_batch``,
deletes the rows and writes each event's final ``rejected`` result (``parked_expired``) to
the outbox in the same transaction. No webhook, no status change.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import asyncpg
import structlog

from services.adapters.parked_expiry import expire_parked
from services.adapters.postgres import Backoff
from services.adapters.repository import PostgresStorage, PostgresStore
from services.config.settings import Settings
from services.contract.inbound import AutoExpireEvent
from services.domain.program import Program
from services.entrypoints.bootstrap import ProcessParts
from services.service_layer.decoding import Decoded
from services.service_layer.pipeline import BatchPipeline

log = structlog.get_logger(__name__)
Clock = Callable[[], datetime]

# From where the sweep's previous batch ended ($4): the due index keeps an entry for every
# transaction swept until vacuum removes it, and reading from the start each time walked all of
# them again: a sweep of N cost O(N²) (80 ms a batch at 50,000, most of the sweep's CPU).
_DUE = """
    SELECT program, transaction_id, customer_id, auto_accept_at FROM transactions
    WHERE status = 'pending' AND auto_accept_at <= $1 AND program = ANY($2::text[])
      AND auto_accept_at >= $4
    ORDER BY auto_accept_at
    LIMIT $3
"""
_FROM_THE_START = datetime.min.replace(tzinfo=UTC)
_CLAIM = """
    SELECT program, transaction_id FROM transactions
    WHERE (program, transaction_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
    ORDER BY program, transaction_id
    FOR UPDATE SKIP LOCKED
"""


def _expiry_event(program: str, transaction_id: str, customer: str | None, due: datetime) -> Decoded[Any]:
    event_id = f"auto:{transaction_id}:{due.isoformat()}"
    event = AutoExpireEvent(
        action="auto_expire",
        event_id=event_id,
        program=program,
        customer=customer,
        occurred_at=due,
        data={"transaction_id": transaction_id},
    )
    return Decoded(
        source="timer",
        event=event,
        program=program,
        event_id=event_id,
        action="auto_expire",
        occurred_at=due,
        transaction_id=transaction_id,
    )


def pending_timer(parts: ProcessParts) -> PendingTimer:
    """The peer factory of the pending-lifecycle process: the timer on the process's pool,
    feeding the lifecycle pipeline (``run_service(pending_lifecycle(), peers=[pending_timer])``)."""
    return PendingTimer(parts.settings, parts.programs, parts.pool, parts.pipeline("lifecycle"))


class PendingTimer:
    def __init__(
        self,
        settings: Settings,
        programs: dict[str, Program],
        pool: asyncpg.Pool,
        pipeline: BatchPipeline,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.storage = PostgresStorage(pool, settings)
        self.pipeline = pipeline
        self.clock = clock
        self.programs = sorted(name for name, p in programs.items() if p.pending_period is not None)
        # Programs by their parked_max_age in seconds: one expiry query per distinct age.
        self.parked_max_ages: dict[int, list[str]] = {}
        for name, p in sorted(programs.items()):
            self.parked_max_ages.setdefault(p.parked_max_age.seconds, []).append(name)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.programs or self.parked_max_ages:
            self._task = asyncio.create_task(self._run(), name="pending-timer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        backoff = Backoff(self.settings)
        while True:
            try:
                await self.sweep()
                await self.sweep_parked()
                backoff = Backoff(self.settings)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("timer_sweep_failed", error=repr(exc), delay=backoff.delay)
                await backoff.wait()
                continue
            await asyncio.sleep(self.settings.timer_poll_seconds)

    async def sweep(self) -> int:
        """Expire every transaction due now; return how many were transitioned or refused."""
        total = 0
        after = _FROM_THE_START
        while self.programs:
            outcomes, seen, after = await self.storage.transaction(
                "timer_sweep", partial(self._sweep_batch, after=after)
            )
            self.pipeline.committed(outcomes)
            handled = len(outcomes)
            total += handled
            # Stop when the due set is exhausted, or when everything left is claimed elsewhere.
            if seen < self.settings.timer_batch or handled == 0:
                return total
        return total

    async def sweep_parked(self) -> int:
        """Expire every event parked longer than its program's ``parked_max_age``, in batches of
        ``timer_batch`` (one database transaction each); return how many were expired. Events on
        a transaction another replica or a consumer holds are skipped, left to a later sweep."""
        limit = self.settings.timer_batch
        total = 0
        for seconds, names in self.parked_max_ages.items():
            while True:
                expired = await self.storage.transaction(
                    "parked_expiry", partial(self._expire_batch, names=names, seconds=seconds)
                )
                if expired:
                    log.info("parked_expired", count=expired, programs=names, max_age_seconds=seconds)
                    self.pipeline.committed(["parked_expired"] * expired)  # counts, wakes the relay
                total += expired
                if expired < limit:
                    break
        return total

    async def _expire_batch(self, store: PostgresStore, names: list[str], seconds: int) -> int:
        expired = await expire_parked(
            store.conn,
            self.settings,
            programs=names,
            older_than_seconds=seconds,
            limit=self.settings.timer_batch,
        )
        return len(expired)

    async def _sweep_batch(self, store: PostgresStore, after: datetime) -> tuple[list[str], int, datetime]:
        """One batch of the transactions due from ``after`` on: (outcomes, how many were due,
        where the next batch starts). Those skipped here (held elsewhere, SKIP LOCKED) are
        left to their holder or to the next sweep, which starts from the beginning again."""
        conn = store.conn
        due = await conn.fetch(_DUE, self.clock(), self.programs, self.settings.timer_batch, after)
        if not due:
            return [], 0, after
        after = due[-1]["auto_accept_at"]
        claimed = {
            (r["program"], r["transaction_id"])
            for r in await conn.fetch(_CLAIM, [r["program"] for r in due], [r["transaction_id"] for r in due])
        }
        items = [
            _expiry_event(r["program"], r["transaction_id"], r["customer_id"], r["auto_accept_at"])
            for r in due
            if (r["program"], r["transaction_id"]) in claimed
        ]
        if not items:
            return [], len(due), after
        # Each auto_expire starts a trace of its own (docs/tracing.md), linked to this batch.
        with self.pipeline.tracer.batch("pending-timer", len(items)):
            outcomes = await self.pipeline.apply_items(store, items)
        return outcomes, len(due), after
