"""The steady-load stage of ``make bench``: latency as a downstream consumer sees it.

The checkout consumer (its own process, production settings) runs on fresh topics. The bench
produces ``rate`` checkouts a second for ``seconds`` (paced: every 10 ms, the events due by
then), remembering when each was sent. A plain consumer (no group, from the beginning) reads
``event-results`` and ``webhooks`` and notes when each event's result arrives and when its
last webhook does (three per checkout of the bench's body: ``transaction.created``,
``points.earned``, ``transaction.accepted``; keyed to events by transaction id). Reported:
p50/p99 of produce → result and produce → last webhook, the achieved rate, and the CPU of
each component over the stage. Bounded: it stops once every event is seen or at a deadline.

``LOYALTY_BENCH_LOAD_RATE`` (500) and ``LOYALTY_BENCH_LOAD_SECONDS`` (60) shorten it.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.adapters.kafka import client_options
from services.admin import create_topics
from services.config.settings import Settings, Topics
from tools import cpu

ROOT = Path(__file__).resolve().parents[1]
TICK_SECONDS = 0.01
WEBHOOKS_PER_CHECKOUT = 3
WARMUP_SECONDS = 120


@dataclass(frozen=True)
class LoadResult:
    rate: int
    seconds: float
    sent: int
    produce_seconds: float
    results: list[float]  # produce → result, seconds, per event seen
    webhooks: list[float]  # produce → last webhook, seconds, per event with all its webhooks
    cost: cpu.Cost
    drain_seconds: float  # from the last send to the last event seen

    @property
    def achieved(self) -> float:
        return self.sent / self.produce_seconds

    @staticmethod
    def p(values: list[float], q: int) -> float:
        if len(values) < 2:
            return values[0] if values else float("nan")
        return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _transaction_id(value: bytes) -> str | None:
    data = json.loads(value).get("data", {})
    transaction = data.get("transaction")
    tid = transaction.get("transaction_id") if isinstance(transaction, dict) else data.get("transaction_id")
    return tid if isinstance(tid, str) else None


class _Seen:
    """Arrival times (perf_counter) of results by event id and webhooks by transaction id."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.results: dict[str, float] = {}
        self.webhooks: dict[str, list[float]] = {}
        self.consumer = AIOKafkaConsumer(
            **client_options(settings), group_id=None, auto_offset_reset="earliest"
        )

    async def run(self) -> None:
        topics = self.settings.topics
        await self.consumer.start()
        partitions = [
            TopicPartition(topic, p)
            for topic in (topics.event_results, topics.webhooks)
            for p in range(self.settings.topic_partitions)
        ]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_beginning(*partitions)
        while True:
            batches = await self.consumer.getmany(timeout_ms=50, max_records=2000)
            now = time.perf_counter()
            for tp, records in batches.items():
                for record in records:
                    if tp.topic == topics.event_results:
                        self.results.setdefault((record.key or b"").decode(), now)
                    elif (tid := _transaction_id(record.value or b"{}")) is not None:
                        self.webhooks.setdefault(tid, []).append(now)


async def send_paced(
    producer: AIOKafkaProducer, topic: str, bodies: list[dict[str, Any]], rate: int
) -> dict[str, float]:
    """Send checkout ``bodies`` at ``rate`` a second (every 10 ms, those due by then), keyed by
    customer; return when each was sent (perf_counter) by transaction id, once all are acked."""
    payloads = [(json.dumps(b).encode(), b["customer"].encode()) for b in bodies]
    sent_at: dict[str, float] = {}
    futures = []
    start = time.perf_counter()
    sent = tick = 0
    while sent < len(bodies):
        tick += 1
        due = min(len(bodies), round(rate * tick * TICK_SECONDS))
        for n in range(sent, due):
            sent_at[bodies[n]["data"]["transaction_id"]] = time.perf_counter()
            futures.append(await producer.send(topic, payloads[n][0], key=payloads[n][1]))
        sent = due
        pause = start + tick * TICK_SECONDS - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
    await asyncio.gather(*futures)
    return sent_at


async def bench_load(
    base: Settings, tag: str, body: Callable[[int], dict[str, Any]], rate: int, seconds: float
) -> LoadResult:
    """``body(n)``: the n-th checkout (its own event id and transaction id); ``body(-1)`` warms up."""
    settings = base.model_copy(update={"topics": Topics().prefixed(f"{tag}."), "group_prefix": f"{tag}."})
    await create_topics(settings)
    seen = _Seen(settings)
    reader = asyncio.create_task(seen.run())
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    await producer.start()
    env = {**os.environ, **settings.as_env(), "LOYALTY_LOG_LEVEL": "WARNING"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.checkout", cwd=ROOT, env=env
    )
    try:
        # One event through first, so the stage starts with the consumer up and assigned.
        warm = body(-1)
        await producer.send_and_wait(
            settings.topics.checkouts, json.dumps(warm).encode(), key=warm["customer"].encode()
        )
        deadline = time.perf_counter() + WARMUP_SECONDS
        while warm["event_id"] not in seen.results:
            if time.perf_counter() > deadline or process.returncode is not None:
                raise RuntimeError("steady load: the checkout consumer did not start")
            await asyncio.sleep(0.05)

        total = int(rate * seconds)
        bodies = [body(n) for n in range(total)]
        before = cpu.snapshot([process.pid])
        start = time.perf_counter()
        sent_at = await send_paced(producer, settings.topics.checkouts, bodies, rate)
        produce_seconds = time.perf_counter() - start

        events = {b["event_id"]: b["data"]["transaction_id"] for b in bodies}
        deadline = time.perf_counter() + max(60.0, 2 * seconds)

        def complete() -> bool:
            return all(e in seen.results for e in events) and all(
                len(seen.webhooks.get(t, ())) >= WEBHOOKS_PER_CHECKOUT for t in events.values()
            )

        while not complete() and time.perf_counter() < deadline and process.returncode is None:
            await asyncio.sleep(0.1)
        cost = cpu.snapshot([process.pid]) - before
        last = max([*seen.results.values(), *(max(h) for h in seen.webhooks.values())], default=start)
        drain = last - (start + produce_seconds)
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await seen.consumer.stop()
        await producer.stop()

    results = [seen.results[e] - sent_at[t] for e, t in events.items() if e in seen.results]
    webhooks = [
        max(seen.webhooks[t]) - sent_at[t]
        for t in events.values()
        if len(seen.webhooks.get(t, ())) >= WEBHOOKS_PER_CHECKOUT
    ]
    return LoadResult(rate, seconds, total, produce_seconds, results, webhooks, cost, drain)


def report(result: LoadResult) -> list[str]:
    """Lines for the bench's output."""
    ms = 1000.0
    r, w = result.results, result.webhooks
    lines = [
        f"steady load: {result.rate}/s asked for {result.seconds:.0f} s, {result.sent} checkouts sent "
        f"at {result.achieved:,.0f}/s (checkout consumer alone, fresh topics)",
        f"  produce → result:       p50 {result.p(r, 50) * ms:8.1f} ms   p99 {result.p(r, 99) * ms:8.1f} ms"
        f"   ({len(r)} of {result.sent} seen)",
        f"  produce → last webhook: p50 {result.p(w, 50) * ms:8.1f} ms   p99 {result.p(w, 99) * ms:8.1f} ms"
        f"   ({len(w)} of {result.sent} with all {WEBHOOKS_PER_CHECKOUT})",
        f"  last output {result.drain_seconds:.2f} s after the last send",
    ]
    if len(r) < result.sent or len(w) < result.sent:
        lines.append("  INCOMPLETE: the deadline passed before every event's outputs arrived")
    return lines
