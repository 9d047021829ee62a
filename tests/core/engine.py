"""The consumers' pipelines on the in-memory store: the real decoding, batch core, action
registry and domain, fed JSON records as the broker would, with no I/O."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from services.config.settings import Settings
from services.domain.program import Program
from services.service_layer.actions import (
    checkout_ingestion,
    enrichment,
    pending_lifecycle,
    refunds,
    transaction_enrichment,
)
from services.service_layer.decoding import RawRecord
from services.service_layer.pipeline import BatchPipeline
from tests.memory import MemoryStorage

TOPIC_OF_ACTION = {
    "checkout": "checkouts",
    "checkout_claim": "checkouts",
    "coupon_redeem": "checkouts",
    "checkout_update": "lifecycle",
    "checkout_accept": "lifecycle",
    "checkout_reject": "lifecycle",
    "point_unspend": "lifecycle",
    "refund": "refunds",
    "partial_refund": "refunds",
    "refund_item": "refunds",
    "offer_unredeem": "refunds",
    "coupon_unredeem": "refunds",
    "product_upsert": "catalog",
    "coupon_assign": "catalog",
    "coupon_invalidate": "catalog",
}


def key_of(body: dict[str, Any]) -> str:
    """As DESIGN.md section 2 keys records: the customer id (the transaction id for a guest,
    the entity id on the catalog topic)."""
    data = body["data"]
    if TOPIC_OF_ACTION[body["action"]] == "catalog":
        return str(data.get("code") or data.get("product_id"))
    return str(body.get("customer") or data.get("customer") or data["transaction_id"])


def lane_of(body: dict[str, Any]) -> tuple[str, str]:
    """Records of one topic and key share a partition and keep their order; records of
    different lanes arrive in any order."""
    return TOPIC_OF_ACTION[body["action"]], key_of(body)


class MemoryEngine:
    def __init__(self, *programs: Program) -> None:
        self.settings = Settings(default_program=programs[0].name)
        self.programs = {p.name: p for p in programs}
        self.storage = MemoryStorage()
        handlers = [checkout_ingestion(), pending_lifecycle(), refunds(), enrichment()]
        self.pipelines = {
            h.topic: BatchPipeline(self.settings, self.programs, self.storage, h) for h in handlers
        }
        self.status_pipeline = BatchPipeline(
            self.settings, self.programs, self.storage, transaction_enrichment()
        )
        self.offset = 0

    def record(self, body: dict[str, Any]) -> RawRecord:
        self.offset += 1
        topic = getattr(self.settings.topics, TOPIC_OF_ACTION[body["action"]])
        return RawRecord(topic, 0, self.offset, key_of(body).encode(), json.dumps(body).encode(), (), 0)

    async def send(self, bodies: Sequence[dict[str, Any]]) -> None:
        """One polled batch of one topic's records."""
        topics = {TOPIC_OF_ACTION[b["action"]] for b in bodies}
        assert len(topics) == 1, "a batch comes from one topic"
        await self.pipelines[topics.pop()].process([self.record(b) for b in bodies])

    def results(self) -> dict[str, dict[str, Any]]:
        """The last result of each event (a parked event's final one once released)."""
        topic = self.settings.topics.event_results
        values = [json.loads(m.value) for m in self.storage.state.outbox if m.topic == topic]
        return {v["event_id"]: v for v in values}
