"""The batch pipeline every consumer shares (docs/batching.md, docs/idempotency.md,
docs/parking.md).

For a polled batch, partition by partition in offset order, inside one database transaction:
decode every record; claim inbox keys (duplicates fall out); lock the customers and
transactions the new events touch (and load their parked events); apply each event in order
with the pure domain; after each applied event, retry the events parked on its transaction;
write state, ledger, history, parked events and outbox rows set-based; commit. Only after that
commit does the caller commit Kafka offsets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol

import asyncpg
import structlog
from prometheus_client import Counter, Histogram
from pydantic import TypeAdapter

from services.adapters import repository
from services.adapters.postgres import in_transaction
from services.config.settings import Settings
from services.domain.effects import Effects, EventMeta, Parked, Rejected
from services.domain.program import Program
from services.service_layer.decoding import Decoded, Invalid, RawRecord, Translate, decode
from services.service_layer.messages import OutboxBuilder
from services.service_layer.registry import Action
from services.service_layer.unit_of_work import Key, Needs, ParkedEvent, UnitOfWork

log = structlog.get_logger(__name__)

EVENTS = Counter("loyalty_events_total", "Inbound events by outcome", ["service", "outcome"])
BATCH_SECONDS = Histogram("loyalty_batch_seconds", "Time to apply one polled batch", ["service"])


class EventHandler(Protocol):
    """What a consumer plugs into the pipeline (``services.service_layer.registry.TopicHandler``)."""

    service: str
    topic: str
    adapter: TypeAdapter[Any]
    actions: frozenset[str]
    registry: Mapping[str, Action]
    translate: Translate | None


def _meta(decoded: Decoded[Any]) -> EventMeta:
    return EventMeta(
        decoded.program, decoded.event_key, decoded.event_id, decoded.action, decoded.occurred_at
    )


class BatchPipeline:
    def __init__(
        self,
        settings: Settings,
        programs: dict[str, Program],
        pool: asyncpg.Pool,
        handler: EventHandler,
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.programs = programs
        self.pool = pool
        self.handler = handler
        self.registry = handler.registry
        self.builder = OutboxBuilder(settings.topics)
        self.on_commit = on_commit

    def decode(self, record: RawRecord) -> Decoded[Any] | Invalid | None:
        h = self.handler
        return decode(record, h.adapter, h.actions, self.settings.default_program, h.translate)

    async def process(self, records: Sequence[RawRecord]) -> None:
        # A poll may mix partitions: regroup them, each in offset order. The whole poll is one
        # database transaction (one commit per poll, not per partition); partitions never
        # share ordering constraints, so applying them one after the other is correct.
        partitions: dict[tuple[str, int], list[RawRecord]] = {}
        for record in records:
            partitions.setdefault((record.topic, record.partition), []).append(record)
        decoded = [
            self.decode(r) for part in partitions.values() for r in sorted(part, key=lambda r: r.offset)
        ]
        items = [item for item in decoded if item is not None]
        if items:
            await self.run(items)

    async def run(self, items: Sequence[Decoded[Any] | Invalid]) -> None:
        """Apply decoded items in one database transaction (retried whole when transient)."""
        with BATCH_SECONDS.labels(self.handler.service).time():
            await in_transaction(
                self.pool, self.settings, "apply_batch", partial(self.apply_items, items=items)
            )
        self.on_commit()

    async def apply_items(self, conn: asyncpg.Connection, items: Sequence[Decoded[Any] | Invalid]) -> None:
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
        needs = Needs()
        for item, is_new in zip(items, fresh, strict=True):
            if is_new and isinstance(item, Decoded) and item.program in self.programs:
                needs.add(self.registry[item.action].needs(item.program, item.event))
        await repository.load(conn, uow, needs, self._needs_of)

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
        outcome = self._attempt(uow, program, item)
        if isinstance(outcome, Parked):
            uow.park(
                ParkedEvent(
                    program=item.program,
                    transaction_id=item.transaction_id or "",
                    event_key=item.event_key,
                    event_id=item.event_id,
                    action=item.action,
                    body=item.event.model_dump(mode="json"),
                    occurred_at=item.occurred_at,
                    source=item.record.source,
                    reason=outcome.code,
                )
            )
            uow.outbox.append(self.builder.decoded_result(item, "parked", (outcome.code, outcome.message)))
            return "parked"
        if outcome == "applied" and item.transaction_id is not None:
            self._release(uow, program, item.transaction_id)
        return outcome

    def _attempt(self, uow: UnitOfWork, program: Program, item: Decoded[Any]) -> str | Parked:
        """Apply one event, recording its effects and its final result; a parked event's
        result is left to the caller (parked now, or still parked on a retry)."""
        effects = Effects(_meta(item))
        try:
            self.registry[item.action].apply(uow, program, item.event, effects)
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
        except Parked as parked:
            uow.record(effects)  # a draft may have been created
            uow.outbox.extend(self.builder.effects(program, effects))
            return parked
        uow.record(effects)
        uow.outbox.extend(self.builder.effects(program, effects))
        uow.outbox.append(self.builder.decoded_result(item, "applied", effects=effects))
        return "applied"

    def _needs_of(self, parked: ParkedEvent) -> Needs:
        action = self.registry[parked.action]
        return action.needs(parked.program, action.model.model_validate(parked.body))

    def _release(self, uow: UnitOfWork, program: Program, transaction_id: str) -> None:
        """Retry the events parked on a transaction that just changed, in arrival order: each
        time one moves (applied, or rejected for good), start again from the earliest still
        parked, since the change it made may be what an earlier one waits for. Ends when a
        whole pass moves none."""
        waiting = uow.parked.get((program.name, transaction_id))
        while waiting and self._release_first_movable(uow, program, waiting):
            pass

    def _release_first_movable(self, uow: UnitOfWork, program: Program, waiting: list[ParkedEvent]) -> bool:
        for parked in waiting:
            event = self.registry[parked.action].model.model_validate(parked.body)
            topic, partition, offset = parked.source.rsplit(":", 2)
            decoded = Decoded(
                record=RawRecord(topic, int(partition), int(offset), None, None, (), 0),
                event=event,
                program=parked.program,
                event_id=parked.event_id,
                action=parked.action,
                occurred_at=parked.occurred_at,
                transaction_id=parked.transaction_id,
            )
            outcome = self._attempt(uow, program, decoded)
            if isinstance(outcome, Parked):
                continue
            EVENTS.labels(self.handler.service, f"released_{outcome}").inc()
            uow.unpark(parked)
            return True
        return False
