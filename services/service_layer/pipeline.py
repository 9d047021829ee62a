"""The batch pipeline every consumer shares (docs/batching.md, docs/idempotency.md,
docs/parking.md): the I/O shell around the batch core (``batch.py``).

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

from prometheus_client import Counter, Histogram
from pydantic import TypeAdapter

from services.config.settings import Settings
from services.config.webhook_secrets import read_webhook_secrets
from services.domain.program import Program
from services.service_layer.batch import BatchCore, Item
from services.service_layer.decoding import Decoded, Invalid, RawRecord, Translate, decode
from services.service_layer.messages import OutboxBuilder
from services.service_layer.registry import Action
from services.service_layer.store import Storage, Store, load
from services.service_layer.tracing import IDS_ONLY, OtelTracer, Tracer
from services.service_layer.unit_of_work import Key, UnitOfWork

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


class BatchPipeline:
    """The I/O shell around the batch core: claim inbox keys, load, core, save, commit (one
    transaction per polled batch, retried whole when transient), then metrics and the relay's
    wake-up. Only after that does the caller commit Kafka offsets."""

    def __init__(
        self,
        settings: Settings,
        programs: dict[str, Program],
        storage: Storage,
        handler: EventHandler,
        on_commit: Callable[[], None] = lambda: None,
        tracer: Tracer | None = None,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.handler = handler
        secrets = read_webhook_secrets(settings.webhook_secrets, settings.webhook_secrets_dir, programs)
        if tracer is None:  # OpenTelemetry only when an exporter is configured
            tracer = OtelTracer() if settings.otel_exporter_otlp_endpoint else IDS_ONLY
        self.tracer = tracer
        self.core = BatchCore(programs, handler.registry, OutboxBuilder(settings.topics, secrets), tracer)
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

    async def run(self, items: Sequence[Item]) -> None:
        """Apply decoded items in one database transaction (retried whole when transient)."""
        with (
            BATCH_SECONDS.labels(self.handler.service).time(),
            self.tracer.batch(self.handler.service, len(items)),
        ):
            outcomes = await self.storage.transaction("apply_batch", partial(self.apply_items, items=items))
        self.committed(outcomes)

    def committed(self, outcomes: Sequence[str]) -> None:
        """After a commit: count the outcomes once (not per retried attempt), wake the relay."""
        for outcome in outcomes:
            EVENTS.labels(self.handler.service, outcome).inc()
        self.on_commit()

    async def apply_items(self, store: Store, items: Sequence[Item]) -> list[str]:
        new_keys = await store.claim_inbox([(i.program, i.event_key, i.action, i.source) for i in items])
        seen: set[Key] = set()
        fresh: list[bool] = []
        for item in items:
            key = (item.program, item.event_key)
            fresh.append(key in new_keys and key not in seen)
            seen.add(key)
        uow = UnitOfWork()
        await load(store, uow, self.core.needs(items, fresh), self.core.parked_needs)
        outcomes = self.core.apply(uow, items, fresh)
        await store.save(uow)
        return outcomes
