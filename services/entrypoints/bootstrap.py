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
import contextlib
import gc
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
import structlog
import uvloop
from aiokafka.cluster import ClusterMetadata
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage

from services.adapters.health import HealthServer, Readiness
from services.adapters.kafka import broker_options, check_access, is_retryable_start_failure
from services.adapters.postgres import RetryScope, create_pool, is_unreachable, retry_scope, retrying
from services.adapters.relay import OutboxRelay
from services.adapters.repository import ROW_TYPES, PostgresStorage
from services.config.logs import configure_logging
from services.config.programs import load_programs
from services.config.settings import Settings
from services.domain.program import Program
from services.entrypoints.signals import SignalsCollector
from services.entrypoints.telemetry import configure_tracing
from services.service_layer.decoding import RawRecord
from services.service_layer.pipeline import BatchPipeline, EventHandler

log = structlog.get_logger(__name__)
# A readiness probe slower than this (a busy broker or pool) counts as a failure.
_PROBE_TIMEOUT_SECONDS = 5.0


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


async def _records_only(message: StreamMessage[Any]) -> Any:
    """The handler's argument: the polled records as they are (a batch's ``raw_message``). The
    handlers decode them in the pipeline: FastStream's own decoding of every body (JSON, and a
    message object per record) was thrown away, at 2-4% of a consumer's CPU."""
    return message.raw_message


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
        # /readyz (docs/retries.md); a probe of the database and the broker while idle.
        self.readiness = Readiness(settings.ready_stuck_seconds)
        self._probe_task: asyncio.Task[None] | None = None
        # No dependency injection (apply_types): a handler takes the polled records and nothing
        # else. With it, FastStream resolved the handler's message parameter through a
        # synchronous context field, which fast_depends runs in a worker thread: a thread hop
        # and about 1 ms of CPU per batch (docs/runtime.md).
        self.broker = KafkaBroker(
            settings.kafka_bootstrap_servers, logger=None, apply_types=False, **broker_options(settings)
        )
        self.subscribers: list[tuple[str, Any]] = []  # (consumer group, subscriber)
        for handler in self.handlers:
            subscriber = self.broker.subscriber(
                self.topic_of(handler),
                group_id=f"{settings.group_prefix}{handler.service}",
                batch=True,
                max_records=settings.batch_max_records,
                batch_timeout_ms=settings.batch_timeout_ms,
                fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
                fetch_min_bytes=settings.consumer_fetch_min_bytes,
                auto_offset_reset="earliest",
                ack_policy=AckPolicy.NACK_ON_ERROR,
                max_poll_interval_ms=settings.consumer_max_poll_interval_ms,
                decoder=_records_only,
            )
            subscriber(self._on_batch(handler.topic))
            self.subscribers.append((f"{settings.group_prefix}{handler.service}", subscriber))

    def topic_of(self, handler: EventHandler) -> str:
        return str(getattr(self.settings.topics, handler.topic))

    def _on_batch(self, topic: str) -> Callable[[Sequence[ConsumerRecord[bytes, bytes]]], Awaitable[None]]:
        async def on_batch(records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
            # Thin entrypoint: adapt the records, hand them to the pipeline. Transient failures
            # are retried for a third of max.poll.interval at most; then the error propagates,
            # FastStream rewinds the batch's partitions and the consumer polls again (staying
            # in its group) and gets the same records back (docs/retries.md).
            self.readiness.saw("broker", True)
            budget = self.settings.consumer_max_poll_interval_ms / 1000 / 3
            try:
                scope = RetryScope(budget, lambda exc: self.readiness.retrying(topic, is_unreachable(exc)))
                with retry_scope(scope):
                    await self.pipelines[topic].process([raw_record(r) for r in records])
            except Exception as exc:
                log.warning("batch_failed_polling_again", topic=topic, error=repr(exc))
                raise
            self.readiness.done(topic)

        on_batch.__name__ = on_batch.__qualname__ = f"on_{topic}_batch"
        return on_batch

    def ready(self) -> bool:
        return self.readiness()

    async def _probe(self) -> None:
        """Every ``health_probe_seconds``, a round trip to the database and to the broker."""
        assert self.pool is not None and self.relay is not None and self.relay.producer is not None
        pool, client = self.pool, self.relay.producer.client
        topics = [self.topic_of(h) for h in self.handlers]

        async def broker() -> None:
            # Metadata of this process's own topics only: the whole cluster's can be thousands
            # of topics, decoded in Python at every probe.
            if not await client._metadata_update(ClusterMetadata(), topics):
                raise KafkaError("no broker answered a metadata request")

        checks = {"database": lambda: pool.fetchval("SELECT 1"), "broker": broker}
        while True:
            await asyncio.sleep(self.settings.health_probe_seconds)
            for dependency, check in checks.items():
                try:
                    await asyncio.wait_for(check(), _PROBE_TIMEOUT_SECONDS)
                except Exception as exc:
                    log.warning("health_probe_failed", dependency=dependency, error=repr(exc))
                    self.readiness.saw(dependency, False)
                else:
                    self.readiness.saw(dependency, True)

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise
        self.started = self.readiness.started = True
        self.readiness.saw("database", True)
        self.readiness.saw("broker", True)
        self._probe_task = asyncio.create_task(self._probe(), name="health-probe")
        log.info("service_started", service=self.name, topics=[self.topic_of(h) for h in self.handlers])

    async def _start(self) -> None:
        # Consumers leave no session state: every setting is SET LOCAL, every advisory lock a
        # transaction's (docs/runtime.md).
        self.pool = pool = await create_pool(self.settings, warm_types=ROW_TYPES, reset_sessions=False)
        self.relay = relay = OutboxRelay(self.settings, pool)
        await relay.start()
        storage = PostgresStorage(pool, self.settings)
        self.pipelines = {
            handler.topic: BatchPipeline(self.settings, self.programs, storage, handler, relay.notify)
            for handler in self.handlers
        }

        async def start_broker() -> None:
            await check_access(self.settings)  # a refused login stops start-up at once
            try:
                await self.broker.start()
            except Exception:
                await self.broker.stop()
                raise

        # The broker may not be up yet: any start failure is worth another try, but a refused
        # login or certificate (KafkaAccessError) is not.
        await retrying("start_broker", self.settings, start_broker, retry_on=is_retryable_start_failure)
        parts = ProcessParts(self.settings, self.programs, pool, self.pipelines)
        for factory in self.peer_factories:
            peer = factory(parts)
            await peer.start()
            self.peers.append(peer)
        # Operational gauges (services/entrypoints/signals.py), a peer like the others, when
        # something scrapes them.
        if self.settings.metrics_port is not None and self.settings.signals_interval_seconds > 0:
            signals = SignalsCollector(
                pool, self.consumers, self.settings.signals_interval_seconds, self.name, self.ready
            )
            await signals.start()
            self.peers.append(signals)

    def consumers(self) -> list[tuple[str, Any]]:
        """Each subscriber's consumer group and aiokafka consumer (None until started)."""
        return [(group, getattr(subscriber, "consumer", None)) for group, subscriber in self.subscribers]

    async def stop(self) -> None:
        """Stop in reverse order within ``shutdown_grace_seconds``: a step still running at the
        deadline (a client retrying an absent broker, a batch retrying an absent database) is
        cancelled, and the pool's connections are then terminated."""
        was_started, self.started = self.started, False
        self.readiness.started = False
        deadline = asyncio.get_running_loop().time() + self.settings.shutdown_grace_seconds
        if self._probe_task is not None:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task
            self._probe_task = None
        for peer in reversed(self.peers):
            await self._within("stop_peer", peer.stop(), deadline)
        self.peers.clear()
        await self._within("stop_broker", self.broker.stop(), deadline)
        self.pipelines = {}
        if self.relay is not None:
            await self._within("stop_relay", self.relay.stop(), deadline)
            self.relay = None
        if self.pool is not None:
            if not await self._within("close_pool", self.pool.close(), deadline):
                self.pool.terminate()
            self.pool = None
        if was_started:
            log.info("service_stopped", service=self.name)

    async def _within(self, step: str, work: Awaitable[None], deadline: float) -> bool:
        """Await ``work`` until ``deadline`` (at least a moment); cancel it past that.
        Return whether it finished."""
        left = max(deadline - asyncio.get_running_loop().time(), 0.1)
        try:
            await asyncio.wait_for(work, left)
        except TimeoutError:
            log.warning("shutdown_step_cancelled", service=self.name, step=step, after=round(left, 1))
            return False
        return True


# Allocations before the cyclic garbage collector's youngest generation is collected (700 by
# default). A batch keeps every event's objects alive until it is saved, about fifty per event,
# so at the default the collector ran every dozen events and walked the batch's survivors again
# and again (about a fifth of a checkout's CPU). Nothing here relies on prompt cycle collection:
# cycles are rare and are still collected, less often.
_GC_YOUNGEST_THRESHOLD = 50_000


def tune_garbage_collector() -> None:
    """Start-up's objects (modules, models, settings) live as long as the process: frozen out
    of every later collection, and collections made rarer (``_GC_YOUNGEST_THRESHOLD``)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(_GC_YOUNGEST_THRESHOLD, older, oldest)


def run_service(*handlers: EventHandler, peers: Sequence[PeerFactory] = ()) -> None:
    """Process entrypoint: one consumer process of these handlers and peers, until
    SIGTERM/SIGINT."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format, handlers[0].service)
    configure_tracing(settings, handlers[0].service)  # only with OTEL_EXPORTER_OTLP_ENDPOINT
    tune_garbage_collector()

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
        # A stop asked for while still starting (the broker or the database away, start-up
        # retrying) cancels the start, which stops what it had started, within the grace.
        starting = asyncio.ensure_future(process.start())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()
            await stopping
            await process.stop()
        else:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        if health is not None:
            await health.stop()

    # uvloop: the consumers, the relay and the database pool spend a good part of each event in
    # the event loop's own machinery (callbacks, transports), which uvloop runs in C.
    uvloop.run(main())
