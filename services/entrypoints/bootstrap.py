"""Running one consumer service: its Kafka batch subscriber (FastStream), database pool,
pipeline and outbox relay, started and stopped together.

The subscriber commits offsets only when the handler returns (``AckPolicy.NACK_ON_ERROR``),
i.e. after the batch's database transactions committed; if the handler raises, FastStream
rewinds every partition of the batch to its first record, so nothing is skipped.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import asyncpg
import structlog
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.adapters.health import HealthServer
from services.adapters.postgres import create_pool, retrying
from services.adapters.relay import OutboxRelay
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


class Background(Protocol):
    """A component running beside the consumer (the pending-period timer)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


BackgroundFactory = Callable[["ConsumerService"], Background]


class ConsumerService:
    def __init__(
        self,
        settings: Settings,
        handler: EventHandler,
        programs: dict[str, Program] | None = None,
        background: Sequence[BackgroundFactory] = (),
    ) -> None:
        self.settings = settings
        self.handler = handler
        self.topic: str = getattr(settings.topics, handler.topic)
        self.background_factories = background
        self.background: list[Background] = []
        self.programs = programs if programs is not None else load_programs(settings.programs_file)
        self.pool: asyncpg.Pool | None = None
        self.relay: OutboxRelay | None = None
        self.pipeline: BatchPipeline | None = None
        self.started = False
        self.last_batch_failed = False
        self.broker = KafkaBroker(settings.kafka_bootstrap_servers, logger=None)
        subscriber = self.broker.subscriber(
            self.topic,
            group_id=f"{settings.group_prefix}{handler.service}",
            batch=True,
            max_records=settings.batch_max_records,
            batch_timeout_ms=settings.batch_timeout_ms,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
        )
        subscriber(self._on_batch)

    async def _on_batch(self, message: KafkaMessage) -> None:
        # Thin entrypoint: adapt the records, hand them to the pipeline.
        assert self.pipeline is not None
        self.last_batch_failed = True
        await self.pipeline.process([raw_record(r) for r in message.raw_message])
        self.last_batch_failed = False

    def ready(self) -> bool:
        return self.started and not self.last_batch_failed

    async def start(self) -> None:
        self.pool = await create_pool(self.settings)
        self.relay = OutboxRelay(self.settings, self.pool)
        await self.relay.start()
        self.pipeline = BatchPipeline(
            self.settings, self.programs, self.pool, self.handler, self.relay.notify
        )

        async def start_broker() -> None:
            try:
                await self.broker.start()
            except Exception:
                await self.broker.stop()
                raise

        # The broker may not be up yet: any start failure is worth another try.
        await retrying("start_broker", self.settings, start_broker, retry_on=lambda exc: True)
        for factory in self.background_factories:
            component = factory(self)
            await component.start()
            self.background.append(component)
        self.started = True
        log.info("service_started", service=self.handler.service, topic=self.topic)

    async def stop(self) -> None:
        self.started = False
        for component in self.background:
            await component.stop()
        self.background.clear()
        await self.broker.stop()
        if self.relay is not None:
            await self.relay.stop()
        if self.pool is not None:
            await self.pool.close()
        log.info("service_stopped", service=self.handler.service)


def run_service(*handlers: EventHandler, background: Sequence[BackgroundFactory] = ()) -> None:
    """Process entrypoint: one consumer per handler (the first with the background components),
    until SIGTERM/SIGINT."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format, handlers[0].service)

    async def main() -> None:
        services = [
            ConsumerService(settings, handler, background=background if n == 0 else ())
            for n, handler in enumerate(handlers)
        ]

        def ready() -> bool:
            return all(service.ready() for service in services)

        health = (
            HealthServer(settings.metrics_port, ready, settings.metrics_host)
            if settings.metrics_port
            else None
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if health is not None:
            await health.start()
        for service in services:
            await service.start()
        await stop.wait()
        for service in services:
            await service.stop()
        if health is not None:
            await health.stop()

    asyncio.run(main())
