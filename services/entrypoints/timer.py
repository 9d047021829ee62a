"""The pending-period timer (docs/timers.md), run by the pending-lifecycle service.

Every ``timer_poll_seconds`` it sweeps due pending transactions, in batches: it reads the
due ones, claims them with ``FOR UPDATE SKIP LOCKED`` (transactions come first in the global
lock order), so replicas split the work instead of waiting on each other, then feeds one
internal ``auto_expire`` event per claimed transaction through the same pipeline as consumed
events: inbox key ``auto:<id>:<due time>``, guarded transition (still pending and due, under
the row lock), outbox rows in the same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import structlog

from services.adapters.postgres import Backoff, in_transaction
from services.config.settings import Settings
from services.contract.inbound import AutoExpireEvent
from services.domain.program import Program
from services.service_layer.decoding import Decoded, RawRecord
from services.service_layer.pipeline import BatchPipeline

if TYPE_CHECKING:
    from services.entrypoints.bootstrap import ConsumerService

log = structlog.get_logger(__name__)
Clock = Callable[[], datetime]

_DUE = """
    SELECT program, transaction_id, customer_id, auto_accept_at FROM transactions
    WHERE status = 'pending' AND auto_accept_at <= $1 AND program = ANY($2::text[])
    ORDER BY auto_accept_at
    LIMIT $3
"""
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
        record=RawRecord("timer", -1, -1, None, None, (), 0),
        event=event,
        program=program,
        event_id=event_id,
        action="auto_expire",
        occurred_at=due,
        transaction_id=transaction_id,
    )


class PendingTimer:
    @classmethod
    def beside(cls, service: ConsumerService) -> PendingTimer:
        """The timer of a running consumer service, sharing its pool and pipeline."""
        assert service.pool is not None and service.pipeline is not None
        return cls(service.settings, service.programs, service.pool, service.pipeline)

    def __init__(
        self,
        settings: Settings,
        programs: dict[str, Program],
        pool: asyncpg.Pool,
        pipeline: BatchPipeline,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.pipeline = pipeline
        self.clock = clock
        self.programs = sorted(name for name, p in programs.items() if p.pending_period is not None)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.programs:
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
        while True:
            handled, seen = await in_transaction(self.pool, self.settings, "timer_sweep", self._sweep_batch)
            self.pipeline.on_commit()
            total += handled
            # Stop when the due set is exhausted, or when everything left is claimed elsewhere.
            if seen < self.settings.timer_batch or handled == 0:
                return total

    async def _sweep_batch(self, conn: asyncpg.Connection) -> tuple[int, int]:
        due = await conn.fetch(_DUE, self.clock(), self.programs, self.settings.timer_batch)
        if not due:
            return 0, 0
        claimed = {
            (r["program"], r["transaction_id"])
            for r in await conn.fetch(_CLAIM, [r["program"] for r in due], [r["transaction_id"] for r in due])
        }
        items = [
            _expiry_event(r["program"], r["transaction_id"], r["customer_id"], r["auto_accept_at"])
            for r in due
            if (r["program"], r["transaction_id"]) in claimed
        ]
        if items:
            await self.pipeline.apply_items(conn, items)
        return len(items), len(due)
