"""``make bench``: checkout events per second end to end, beside two raw-limit probes run on
the same messages and rows in the same run, so the ratios hold on a noisy shared machine.

1. produce N checkouts (item level, 2 items, ~N/10 customers) to fresh bench topics;
2. probe: plain aiokafka consumption of those N messages (the broker read limit);
3. probe: plain batched INSERTs of N transaction rows into PostgreSQL (the write limit);
4. engine: the checkout ingestion process (a separate OS process, production settings) from
   start until every event is committed and every outbox row is published.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.admin import create_topics, run_migrations
from services.core.programs import dump_programs
from services.core.settings import Settings, Topics
from services.domain.program import Program

ROOT = Path(__file__).resolve().parents[1]
BATCH = 500


def checkout(n: int, customers: int) -> dict[str, Any]:
    return {
        "event_id": f"bench-{n}",
        "customer": f"customer-{n % customers}",
        "action": "checkout",
        "data": {
            "transaction_id": f"order-{n}",
            "total": "59.90",
            "items": [
                {
                    "product_id": f"p{n % 97}",
                    "price": "19.95",
                    "quantity": 2,
                    "subtotal": "39.90",
                    "category": "shoes",
                },
                {"product_id": f"p{n % 89}", "price": "20.00", "quantity": 1, "subtotal": "20.00"},
            ],
        },
    }


async def produce(settings: Settings, bodies: list[bytes], keys: list[bytes]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        linger_ms=10,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    start = time.perf_counter()
    futures = [
        await producer.send(settings.topics.checkouts, body, key=key)
        for body, key in zip(bodies, keys, strict=True)
    ]
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - start
    await producer.stop()
    return elapsed


async def probe_consume(settings: Settings, count: int) -> float:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    topic = settings.topics.checkouts
    partitions = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    seen = 0
    start = time.perf_counter()
    while seen < count:
        for records in (await consumer.getmany(timeout_ms=1000, max_records=BATCH)).values():
            seen += len(records)
    elapsed = time.perf_counter() - start
    await consumer.stop()
    return elapsed


async def probe_insert(settings: Settings, bodies: list[bytes]) -> float:
    conn = await asyncpg.connect(settings.database_url)
    await conn.execute("CREATE TEMP TABLE bench_raw (LIKE transactions INCLUDING ALL)")
    start = time.perf_counter()
    for i in range(0, len(bodies), BATCH):
        chunk = [json.loads(b) for b in bodies[i : i + BATCH]]
        now = [time.time()] * len(chunk)
        async with conn.transaction():
            await conn.execute(
                """
                INSERT INTO bench_raw (program, transaction_id, customer_id, status, type, created_at,
                                       updated_at, doc)
                SELECT 'bench', t, c, 'accepted', 'Shop', to_timestamp(ts), to_timestamp(ts), d::jsonb
                FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[]) AS u(t, c, ts, d)
                """,
                [b["data"]["transaction_id"] for b in chunk],
                [b["customer"] for b in chunk],
                now,
                [json.dumps(b) for b in chunk],
            )
    elapsed = time.perf_counter() - start
    await conn.close()
    return elapsed


async def run_engine(settings: Settings, program: str, count: int) -> tuple[float, float]:
    """Seconds until all events are committed, and until all their outbox rows are published."""
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    env = {**os.environ, **settings.as_env(), "LOYALTY_LOG_LEVEL": "WARNING"}
    start = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.checkout", cwd=ROOT, env=env
    )
    committed = published = 0.0
    try:
        while not committed:
            if await pool.fetchval("SELECT count(*) FROM inbox WHERE program = $1", program) >= count:
                committed = time.perf_counter() - start
            await asyncio.sleep(0.1)
        while not published:
            if not await pool.fetchval("SELECT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL)"):
                published = time.perf_counter() - start
            await asyncio.sleep(0.1)
    finally:
        process.terminate()
        await process.wait()
        await pool.close()
    return committed, published


async def main() -> None:
    count = int(os.environ.get("LOYALTY_BENCH_EVENTS", "100000"))
    base = Settings()
    tag = time.strftime("bench%Y%m%d%H%M%S")
    program = Program(name=tag, currency="EUR", earn={"category_multipliers": {"shoes": 2}})
    programs_file = Path(tempfile.mkdtemp()) / "programs.yaml"
    programs_file.write_text(dump_programs({tag: program}))
    settings = base.model_copy(
        update={
            "topics": Topics().prefixed(f"{tag}."),
            "group_prefix": f"{tag}.",
            "default_program": tag,
            "programs_file": programs_file,
        }
    )
    await run_migrations(settings)
    await create_topics(settings.kafka_bootstrap_servers, settings.topics, settings.topic_partitions)

    customers = max(count // 10, 1)
    events = [checkout(n, customers) for n in range(count)]
    bodies = [json.dumps(e).encode() for e in events]
    keys = [e["customer"].encode() for e in events]
    print(
        f"bench: {count} checkouts, {customers} customers, {settings.topic_partitions} partitions, run {tag}"
    )

    produced = await produce(settings, bodies, keys)
    consumed = await probe_consume(settings, count)
    inserted = await probe_insert(settings, bodies)
    committed, published = await run_engine(settings, tag, count)

    def rate(seconds: float) -> str:
        return f"{count / seconds:>10,.0f}/s"

    engine = count / published
    rows = [
        ("produce (aiokafka, acks=all)", produced, rate(produced), ""),
        ("probe: plain aiokafka consume", consumed, rate(consumed), f"{engine / (count / consumed):.3f}"),
        ("probe: plain batched INSERT", inserted, rate(inserted), f"{engine / (count / inserted):.3f}"),
        ("engine: state committed", committed, rate(committed), ""),
        ("engine: end to end (outbox published)", published, rate(published), "1.000"),
    ]
    print(f"\n{'stage':<40} {'seconds':>9} {'rate':>12}  engine/stage")
    for name, seconds, r, ratio in rows:
        print(f"{name:<40} {seconds:>9.2f} {r:>12}  {ratio}")


if __name__ == "__main__":
    asyncio.run(main())
