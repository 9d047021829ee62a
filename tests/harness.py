"""Services under test on the real broker and database, on topics, consumer groups and
programs of their own, plus a producer for input and a collector of every output topic.

The handlers are grouped by service name into one ``ConsumerProcess`` each, as the consumer
mains run them (enrichment's two handlers share one process); ``peers`` adds a process's peer
components (``engine.peers["pending-lifecycle"] = [pending_timer]``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.adapters.kafka import client_options
from services.admin import create_topics
from services.config.programs import dump_programs
from services.config.settings import Settings, Topics
from services.domain.program import Program
from services.entrypoints.bootstrap import ConsumerProcess, PeerFactory
from services.service_layer.pipeline import EventHandler

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = ("transaction_status", "webhooks", "event_results", "dlq")


def make_program(name: str, **fields: Any) -> Program:
    return Program.model_validate({"name": name, **fields})


class Engine:
    def __init__(
        self,
        kafka: str,
        database_url: str,
        handlers: list[EventHandler],
        programs: list[Program],
        partitions: int = 3,
        **settings: Any,
    ) -> None:
        self.tag = uuid.uuid4().hex[:8]
        self.programs = {p.name: p for p in programs}
        self.settings = Settings(
            database_url=database_url,
            kafka_bootstrap_servers=kafka,
            topics=Topics().prefixed(f"t{self.tag}."),
            group_prefix=f"t{self.tag}.",
            default_program=programs[0].name,
            topic_partitions=partitions,
            batch_timeout_ms=50,
            relay_idle_seconds=0.05,
            retry_initial_seconds=0.05,
            **settings,
        )
        self.handlers = handlers
        self.peers: dict[str, Sequence[PeerFactory]] = {}
        self.processes: dict[str, ConsumerProcess] = {}
        self.received: dict[str, list[Any]] = defaultdict(list)
        self._producer: AIOKafkaProducer | None = None
        self._collector: AIOKafkaConsumer | None = None
        self._collect_task: asyncio.Task[None] | None = None

    @property
    def topic(self) -> str:
        """The input topic of the first service: where ``send`` goes by default."""
        return str(getattr(self.settings.topics, self.handlers[0].topic))

    def input(self, name: str) -> str:
        return str(getattr(self.settings.topics, name))

    def output(self, name: str) -> str:
        return str(getattr(self.settings.topics, name))

    async def __aenter__(self) -> Engine:
        await create_topics(self.settings)
        self._producer = AIOKafkaProducer(**client_options(self.settings), acks="all")
        await self._producer.start()
        self._collector = AIOKafkaConsumer(
            *[self.output(n) for n in OUTPUTS],
            **client_options(self.settings),
            auto_offset_reset="earliest",
            group_id=None,
        )
        await self._collector.start()
        self._collect_task = asyncio.create_task(self._collect())
        await self.start_service()
        return self

    def services(self) -> dict[str, list[EventHandler]]:
        """The handlers by service name: one process each."""
        grouped: dict[str, list[EventHandler]] = {}
        for handler in self.handlers:
            grouped.setdefault(handler.service, []).append(handler)
        return grouped

    async def start_service(self, service: str | None = None) -> None:
        """Start the process of every service (or of one), if not running."""
        for name, handlers in self.services().items():
            if service not in (None, name) or name in self.processes:
                continue
            process = ConsumerProcess(self.settings, handlers, self.programs, self.peers.get(name, ()))
            await process.start()
            self.processes[name] = process

    async def stop_service(self, service: str | None = None) -> None:
        """Stop the process of every service (or of one)."""
        for name in [n for n in self.processes if service in (None, n)]:
            await self.processes.pop(name).stop()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_service()
        if self._collect_task is not None:
            self._collect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collect_task
        if self._collector is not None:
            await self._collector.stop()
        if self._producer is not None:
            await self._producer.stop()

    async def _collect(self) -> None:
        assert self._collector is not None
        names = {self.output(n): n for n in OUTPUTS}
        async for record in self._collector:
            self.received[names[record.topic]].append(record)

    async def send(
        self,
        body: dict[str, Any] | bytes,
        key: str | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        topic: str | None = None,
    ) -> None:
        assert self._producer is not None
        value = body if isinstance(body, bytes) else json.dumps(body).encode()
        if key is None and isinstance(body, dict):
            key = body.get("customer") or body.get("data", {}).get("transaction_id")
        await self._producer.send_and_wait(
            self.input(topic) if topic else self.topic,
            value,
            key=key.encode() if key else None,
            headers=headers or [],
            partition=partition,
        )

    async def send_many(self, bodies: list[dict[str, Any]]) -> None:
        """Produce many events pipelined, keyed by customer (transaction id for guests)."""
        assert self._producer is not None
        futures = [
            await self._producer.send(
                self.topic,
                json.dumps(body).encode(),
                key=(body.get("customer") or body["data"]["transaction_id"]).encode(),
            )
            for body in bodies
        ]
        await asyncio.gather(*futures)

    async def wait_for(self, name: str, count: int, timeout: float = 30.0) -> list[Any]:
        async def reached() -> None:
            while len(self.received[name]) < count:
                await asyncio.sleep(0.05)

        try:
            await asyncio.wait_for(reached(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"expected {count} records on {name}, got {len(self.received[name])} in {timeout}s"
            ) from None
        return self.received[name]

    async def final_results(self, event_ids: list[str], timeout: float = 30.0) -> dict[str, dict[str, Any]]:
        """Wait until each event has its final result (not ``parked``); return them by id."""

        def finals() -> dict[str, dict[str, Any]]:
            return {v["event_id"]: v for v in self.values("event_results") if v["outcome"] != "parked"}

        async def reached() -> None:
            while not set(event_ids) <= finals().keys():
                await asyncio.sleep(0.05)

        try:
            await asyncio.wait_for(reached(), timeout)
        except TimeoutError:
            missing = sorted(set(event_ids) - finals().keys())
            raise AssertionError(f"no final result for {missing} in {timeout}s") from None
        return finals()

    async def wait_for_result(self, event_id: str, timeout: float = 30.0) -> None:
        """Wait for the first result (parked or final) of one event: it has been handled."""

        async def reached() -> None:
            while not any(v["event_id"] == event_id for v in self.values("event_results")):
                await asyncio.sleep(0.02)

        try:
            await asyncio.wait_for(reached(), timeout)
        except TimeoutError:
            raise AssertionError(f"no result for {event_id} in {timeout}s") from None

    async def results(self, count: int, timeout: float = 30.0) -> dict[str, dict[str, Any]]:
        """The event results received so far, by event id (the last result of each)."""
        records = await self.wait_for("event_results", count, timeout)
        return {json.loads(r.value)["event_id"]: json.loads(r.value) for r in records}

    def values(self, name: str, where: Callable[[Any], bool] = lambda r: True) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in self.received[name] if where(r)]

    # A separate OS process, for crash tests.
    async def spawn(self, module: str, tmp: Path, **extra_env: str) -> asyncio.subprocess.Process:
        programs_file = tmp / f"programs-{self.tag}.yaml"
        programs_file.write_text(dump_programs(self.programs))
        settings = self.settings.model_copy(update={"programs_file": programs_file, "log_level": "WARNING"})
        env = {**os.environ, **settings.as_env(), **extra_env}
        return await asyncio.create_subprocess_exec(sys.executable, "-m", module, cwd=ROOT, env=env)
