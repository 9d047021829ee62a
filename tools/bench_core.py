"""The batch core alone, no I/O: decoding and the batch core over the bench's checkout
records, in polled batches, on units of work filled in memory (every customer new, as in the
bench's first stage). What is left of an event's end-to-end cost is I/O: the database, the
broker and the relay."""

from __future__ import annotations

import time
from collections.abc import Sequence

from services.config.settings import Settings
from services.domain.customer import Customer
from services.domain.program import Program
from services.service_layer.actions import checkout_ingestion
from services.service_layer.batch import BatchCore
from services.service_layer.decoding import Decoded, RawRecord, decode
from services.service_layer.messages import OutboxBuilder
from services.service_layer.unit_of_work import UnitOfWork


def core_rate(
    settings: Settings, program: Program, bodies: Sequence[bytes], keys: Sequence[bytes]
) -> tuple[float, float]:
    """(CPU seconds, events per CPU second) to decode and apply ``bodies`` in batches."""
    handler = checkout_ingestion()
    core = BatchCore({program.name: program}, handler.registry, OutboxBuilder(settings.topics))
    batch = settings.batch_max_records
    started = time.process_time()
    for first in range(0, len(bodies), batch):
        records = [
            RawRecord(settings.topics.checkouts, 0, n, keys[n], bodies[n], (), 0)
            for n in range(first, min(first + batch, len(bodies)))
        ]
        decoded = (decode(r, handler.adapter, handler.actions, program.name) for r in records)
        items = [item for item in decoded if item is not None]
        fresh = [True] * len(items)
        uow = UnitOfWork()
        needs = core.needs(items, fresh)
        for key in needs.customers:
            uow.customers[key] = Customer(*key)
        for catalog_key in needs.catalog:
            uow.catalog[catalog_key] = None
        outcomes = core.apply(uow, items, fresh)
        assert all(isinstance(i, Decoded) for i in items) and set(outcomes) == {"applied"}, set(outcomes)
    seconds = time.process_time() - started
    return seconds, len(bodies) / seconds
