"""The batch pipeline every consumer shares (docs/batching.md, docs/idempotency.md).

For a polled batch, partition by partition in offset order, inside one database transaction:
decode every record; claim inbox keys (duplicates fall out); lock the customers and
transactions the new events touch; let the service's domain handler apply each event in
order; write state, ledger, history and outbox rows set-based; commit. Only after that commit
does the caller commit Kafka offsets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Protocol, TypeVar

import asyncpg
import structlog
from prometheus_client import Counter, Histogram
from pydantic import TypeAdapter

from services.core import repository
from services.core.db import in_transaction
from services.core.outbox import OutboxBuilder
from services.core.records import Decoded, Invalid, RawRecord, decode
from services.core.settings import Settings
from services.core.unit_of_work import Key, UnitOfWork
from services.domain.effects import Effects, EventMeta, Rejected
from services.domain.program import Program

log = structlog.get_logger(__name__)
E = TypeVar("E")

EVENTS = Counter("loyalty_events_total", "Inbound events by outcome", ["service", "outcome"])
BATCH_SECONDS = Histogram("loyalty_batch_seconds", "Time to apply one polled batch", ["service"])


class EventHandler(Protocol[E]):
    """What a consumer plugs into the pipeline: its topic's events and their domain rules."""

    service: str
    adapter: TypeAdapter[E]
    actions: frozenset[str]

    def lock_keys(self, decoded: Decoded[E]) -> tuple[list[Key], list[Key]]:
        """(customers, transactions) the event reads or changes."""

    def apply(self, uow: UnitOfWork, program: Program, decoded: Decoded[E], effects: Effects) -> None:
        """Apply one event to the loaded state, or raise Rejected having changed nothing."""


class BatchPipeline:
    def __init__(
        self,
        settings: Settings,
        programs: dict[str, Program],
        pool: asyncpg.Pool,
        handler: EventHandler[Any],
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.programs = programs
        self.pool = pool
        self.handler = handler
        self.builder = OutboxBuilder(settings.topics)
        self.on_commit = on_commit

    def decode(self, record: RawRecord) -> Decoded[Any] | Invalid:
        return decode(record, self.handler.adapter, self.handler.actions, self.settings.default_program)

    async def process(self, records: Sequence[RawRecord]) -> None:
        # A poll may mix partitions: regroup them, each in offset order. The whole poll is one
        # database transaction (one commit per poll, not per partition); partitions never
        # share ordering constraints, so applying them one after the other is correct.
        partitions: dict[tuple[str, int], list[RawRecord]] = {}
        for record in records:
            partitions.setdefault((record.topic, record.partition), []).append(record)
        items = [self.decode(r) for part in partitions.values() for r in sorted(part, key=lambda r: r.offset)]
        with BATCH_SECONDS.labels(self.handler.service).time():
            await in_transaction(self.pool, self.settings, "apply_batch", partial(self._apply, items=items))
        self.on_commit()

    async def _apply(self, conn: asyncpg.Connection, items: list[Decoded[Any] | Invalid]) -> None:
        new_keys = await repository.claim_inbox(
            conn, [(i.program, i.event_key, i.action, i.record.source) for i in items]
        )
        seen: set[Key] = set()
        fresh: list[bool] = []
        for item in items:
            key = (item.program, item.event_key)
            fresh.append(key in new_keys and key not in seen)
            seen.add(key)

        uow = UnitOfWork()
        customers: list[Key] = []
        transactions: list[Key] = []
        for item, is_new in zip(items, fresh, strict=True):
            if is_new and isinstance(item, Decoded) and item.program in self.programs:
                c, t = self.handler.lock_keys(item)
                customers += c
                transactions += t
        await repository.load(conn, uow, customers, transactions)

        for item, is_new in zip(items, fresh, strict=True):
            outcome = self._handle(uow, item, is_new)
            EVENTS.labels(self.handler.service, outcome).inc()
        await repository.save(conn, uow, self.settings.relay_lanes)

    def _handle(self, uow: UnitOfWork, item: Decoded[Any] | Invalid, is_new: bool) -> str:
        if isinstance(item, Invalid):
            if not is_new:
                return "duplicate"
            log.warning(
                "invalid_message",
                code=item.code,
                reason=item.message,
                source=item.record.source,
                event_id=item.event_id,
            )
            uow.outbox.append(self.builder.dead_letter(item))
            if item.event_id is not None:
                uow.outbox.append(
                    self.builder.result(
                        event_id=item.event_id,
                        program=item.program,
                        action=item.action,
                        transaction_id=None,
                        outcome="rejected",
                        error=(item.code, item.message),
                    )
                )
            return "dead_lettered"
        if not is_new:
            uow.outbox.append(self.builder.decoded_result(item, "duplicate"))
            return "duplicate"
        program = self.programs.get(item.program)
        if program is None:
            uow.outbox.append(
                self.builder.decoded_result(
                    item, "rejected", ("unknown_program", f"program {item.program!r} is not configured")
                )
            )
            return "rejected"
        effects = Effects(
            EventMeta(item.program, item.event_key, item.event_id, item.action, item.occurred_at)
        )
        try:
            self.handler.apply(uow, program, item, effects)
        except Rejected as rejected:
            log.info(
                "event_rejected",
                event_id=item.event_id,
                code=rejected.code,
                reason=rejected.message,
                transaction_id=item.transaction_id,
                source=item.record.source,
            )
            uow.outbox.append(
                self.builder.decoded_result(item, "rejected", (rejected.code, rejected.message))
            )
            return "rejected"
        uow.record(effects)
        uow.outbox.extend(self.builder.effects(program, effects))
        uow.outbox.append(self.builder.decoded_result(item, "applied", effects=effects))
        return "applied"
