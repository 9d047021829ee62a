"""The composition root of a consumer process (cosmicpython's ``bootstrap``): one database
pool, one outbox relay and one Kafka broker, with one batch subscriber and one pipeline per
handler, plus the peer components (the pending-period timer) built from those same parts.
Everything is started and stopped together, in order: pool, relay, pipelines, broker, peers;
stopped in reverse.

Each subscriber commits offsets only when its handler returns (``AckPolicy.NACK_ON_ERROR``),
i.e. after the batch's database transactions committed; if the handler raises, FastStream
rewinds every partition of the batch to its first record, so nothing is skipped.

Each subscriber is its own aiokafka consumer in the group ``<group_prefix><handler.service>``.
The enrichment process has two subscribers (``loyalty.catalog`` and
``loyalty.transaction-status``) in the same group ``loyalty.enrichment``, as when each ran in
a broker of its own: a group whose members subscribe to different topics is valid Kafka, and
aiokafka's leader assigns each topic's partitions only to members subscribed to it
(``tests/integration/test_bootstrap.py`` checks the assignment, with a second replica too).
The price: the two subscriptions rebalance together, and the second member's join makes the
first rejoin at its next heartbeat (about 3 s more at start). A group per subscription would
avoid that but orphan the offsets committed under ``loyalty.enrichment`` on
transaction-status (a new group re-reads the topic from the earliest record) and change the
group the autoscaler watches (``deploy/k8s/enrichment.yaml``).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
import structlog
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.adapters.health import HealthServer
from services.adapters.postgres import create_pool, retrying
from services.adapters.relay import OutboxRelay
from services.adapters.repository import PostgresStorage
from services.config.logs import configure_logging
from services.config.programs import load_programs
from services.config.settings import Settings
from services.domain.program import Program
from services.service_layer.decoding import RawRecord
from services.service_layer.pipeline import BatchPipeline, EventHandler

log = structlog.get_logger(__name__)


def raw_record(record: Any) -> RawRecord:
    return RawRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        headers=tuple(record.headers or ()),
        timestamp_ms=record.timestamp,
    )


class Peer(Protocol):
    """A component running beside the consumers of a process (the pending-period timer):
    started after them, stopped before them."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


@dataclass(frozen=True)
class ProcessParts:
    """What a peer is built from: the process's own settings, programs, pool and pipelines
    (by handler topic, e.g. ``"lifecycle"``), all built by the composition root."""

    settings: Settings
    programs: dict[str, Program]
    pool: asyncpg.Pool
    pipelines: Mapping[str, BatchPipeline]

    def pipeline(self, topic: str) -> BatchPipeline:
        try:
            return self.pipelines[topic]
        except KeyError:
            raise LookupError(f"this process has no handler on {topic!r}: {sorted(self.pipelines)}") from None


PeerFactory = Callable[[ProcessParts], Peer]


class ConsumerProcess:
    """One consumer process: its handlers' subscribers on one broker, their pipelines on one
    pool and one relay, and its peers."""

    def __init__(
        self,
        settings: Settings,
        handlers: Sequence[EventHandler],
        programs: dict[str, Program] | None = None,
        peers: Sequence[PeerFactory] = (),
    ) -> None:
        if not handlers:
            raise ValueError("a consumer process needs at least one handler")
        topics = [h.topic for h in handlers]
        if len(set(topics)) != len(topics):
            raise ValueError(f"one handler per topic in a process: {topics}")
        self.settings = settings
        self.handlers = tuple(handlers)
        self.name = "+".join(dict.fromkeys(h.service for h in handlers))
        self.programs = programs if programs is not None else load_programs(settings.programs_file)
        self.peer_factories = tuple(peers)
        self.pool: asyncpg.Pool | None = None
        self.relay: OutboxRelay | None = None
        self.pipelines: dict[str, BatchPipeline] = {}
        self.peers: list[Peer] = []
        self.started = False
        self._failing: set[str] = set()  # topics whose last batch raised
        self.broker = KafkaBroker(settings.kafka_bootstrap_servers, logger=None)
        for handler in self.handlers:
            subscriber = self.broker.subscriber(
                self.topic_of(handler),
                group_id=f"{settings.group_prefix}{handler.service}",
                batch=True,
                max_records=settings.batch_max_records,
                batch_timeout_ms=settings.batch_timeout_ms,
                auto_offset_reset="earliest",
                ack_policy=AckPolicy.NACK_ON_ERROR,
            )
            subscriber(self._on_batch(handler.topic))

    def topic_of(self, handler: EventHandler) -> str:
        return str(getattr(self.settings.topics, handler.topic))

    def _on_batch(self, topic: str) -> Callable[[KafkaMessage], Awaitable[None]]:
        async def on_batch(message: KafkaMessage) -> None:
            # Thin entrypoint: adapt the records, hand them to the pipeline.
            self._failing.add(topic)
            await self.pipelines[topic].process([raw_record(r) for r in message.raw_message])
            self._failing.discard(topic)

        on_batch.__name__ = on_batch.__qualname__ = f"on_{topic}_batch"
        return on_batch

    def ready(self) -> bool:
        return self.started and not self._failing

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise
        self.started = True
        log.info("service_started", service=self.name, topics=[self.topic_of(h) for h in self.handlers])

    async def _start(self) -> None:
        self.pool = pool = await create_pool(self.settings)
        self.relay = relay = OutboxRelay(self.settings, pool)
        await relay.start()
        storage = PostgresStorage(pool, self.settings)
        self.pipelines = {
            handler.topic: BatchPipeline(self.settings, self.programs, storage, handler, relay.notify)
            for handler in self.handlers
        }

        async def start_broker() -> None:
            try:
                await self.broker.start()
            except Exception:
                await self.broker.stop()
                raise

        # The broker may not be up yet: any start failure is worth another try.
        await retrying("start_broker", self.settings, start_broker, retry_on=lambda exc: True)
        parts = ProcessParts(self.settings, self.programs, pool, self.pipelines)
        for factory in self.peer_factories:
            peer = factory(parts)
            await peer.start()
            self.peers.append(peer)

    async def stop(self) -> None:
        was_started, self.started = self.started, False
        for peer in reversed(self.peers):
            await peer.stop()
        self.peers.clear()
        await self.broker.stop()
        self.pipelines = {}
        if self.relay is not None:
            await self.relay.stop()
            self.relay = None
        if self.pool is not None:
            await self.pool.close()
            self.pool = None
        if was_started:
            log.info("service_stopped", service=self.name)


def run_service(*handlers: EventHandler, peers: Sequence[PeerFactory] = ()) -> None:
    """Process entrypoint: one consumer process of these handlers and peers, until
    SIGTERM/SIGINT."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format, handlers[0].service)

    async def main() -> None:
        process = ConsumerProcess(settings, handlers, peers=peers)
        health = (
            HealthServer(settings.metrics_port, process.ready, settings.metrics_host)
            if settings.metrics_port
            else None
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if health is not None:
            await health.start()
        await process.start()
        await stop.wait()
        await process.stop()
        if health is not None:
            await health.stop()

    asyncio.run(main())
