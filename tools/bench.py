"""``make bench``: engine throughput beside raw-limit probes run in the same run, so the
ratios hold on a noisy shared machine.

Checkouts:
1. produce N checkouts (item level, 2 items, ~N/10 customers) to fresh bench topics;
2. probe: plain aiokafka consumption of those N messages (the broker read limit);
3. probe: plain batched INSERTs of N transaction rows into PostgreSQL (the write limit);
4. engine: the checkout ingestion process (a separate OS process, production settings) from
   start until every event is committed and every outbox row is published.
Pending lifecycle:
5. sweep: N due pending transactions expired by the timer (in-process, with its relay);
6. accepts: N/2 ``checkout_accept`` events through the lifecycle process, end to end.
Enrichment:
7. the enrichment process over the N registrations of stage 4 (a backlog), enrichments/s;
8. N/10 new checkouts with checkout ingestion and enrichment running together: the lag from a
   registration's commit to its enrichment's commit (p50, p99).
Refunds:
9. N/2 full ``refund`` events through the refunds process, end to end.
Read API (tools/bench_api.py):
10. list requests per second and latency over customers of 50 transactions, beside probes.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.adapters import repository
from services.adapters.postgres import create_pool
from services.adapters.relay import OutboxRelay
from services.admin import create_topics, run_migrations
from services.config.programs import dump_programs
from services.config.settings import Settings, Topics
from services.contract.inbound import CheckoutEvent
from services.domain.checkout import register_checkout
from services.domain.effects import Effects, EventMeta
from services.domain.program import Program
from services.entrypoints.timer import PendingTimer
from services.service_layer.actions import pending_lifecycle
from services.service_layer.pipeline import BatchPipeline
from services.service_layer.unit_of_work import Needs, UnitOfWork
from tools.bench_api import PER_CUSTOMER, api_program, bench_read_api

ROOT = Path(__file__).resolve().parents[1]
BATCH = 500
DEADLINE_SECONDS = 1200  # a stage that takes longer is stuck: fail loudly


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


async def produce(settings: Settings, topic: str, bodies: list[bytes], keys: list[bytes]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        linger_ms=10,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    start = time.perf_counter()
    futures = [await producer.send(topic, body, key=key) for body, key in zip(bodies, keys, strict=True)]
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


async def run_engine(
    settings: Settings, module: str | list[str], done_sql: str, args: list[Any]
) -> tuple[float, float]:
    """Run consumer processes from start until ``done_sql`` is true (state committed), then
    until no outbox row is left unpublished; return both times in seconds."""
    modules = [module] if isinstance(module, str) else module
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    env = {**os.environ, **settings.as_env(), "LOYALTY_LOG_LEVEL": "WARNING"}
    start = time.perf_counter()
    processes = [
        await asyncio.create_subprocess_exec(sys.executable, "-m", m, cwd=ROOT, env=env) for m in modules
    ]
    committed = published = 0.0
    try:
        while not committed:
            if await pool.fetchval(done_sql, *args):
                committed = time.perf_counter() - start
            elif time.perf_counter() - start > DEADLINE_SECONDS or any(
                p.returncode is not None for p in processes
            ):
                raise RuntimeError(f"{modules} did not finish: {done_sql} {args}")
            await asyncio.sleep(0.1)
        published = await _drained(pool, start, settings.topics)
    finally:
        for process in processes:
            process.terminate()
            await process.wait()
        await pool.close()
    return committed, published


_ENRICHED = (
    "SELECT count(*) >= $2 FROM transactions"
    " WHERE program = $1 AND transaction_id LIKE $3 AND doc->>'enriched_at' IS NOT NULL"
)
# The live stage's rows only (ids after $3: the table keeps a day of rows). Registrations and
# enrichments are joined in Python: the planner, estimating one row each, chose a nested loop
# of sequential scans that ran for over ten minutes.
_REGISTERED = """
    SELECT convert_from(key, 'UTF8') AS tid, created_at FROM outbox
    WHERE id > $3 AND topic = $1 AND convert_from(key, 'UTF8') LIKE $2
"""
_ENRICHED_AT = """
    SELECT convert_from(value, 'UTF8')::jsonb #>> '{data,transaction,transaction_id}' AS tid, created_at
    FROM outbox WHERE id > $2 AND topic = $1 AND headers @> '[["webhook-type", "transaction.enriched"]]'
"""


async def bench_enrichment(
    settings: Settings, program: Program, count: int
) -> tuple[float, float, list[float]]:
    """Enrichments per second from the checkout stage's backlog of registrations; then the lag
    (registration committed to enrichment committed) with checkout and enrichment running live."""
    backlog, _ = await run_engine(
        settings, "services.enrichment", _ENRICHED, [program.name, count, "order-%"]
    )
    live = count // 10
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
    first_id = await pool.fetchval("SELECT coalesce(max(id), 0) FROM outbox")
    bodies = [checkout(n, live // 10) | {"event_id": f"live-{n}"} for n in range(live)]
    for body in bodies:
        body["data"]["transaction_id"] = f"live-{body['data']['transaction_id']}"
    await produce(
        settings,
        settings.topics.checkouts,
        [json.dumps(b).encode() for b in bodies],
        [b["customer"].encode() for b in bodies],
    )
    live_seconds, _ = await run_engine(
        settings, ["services.checkout", "services.enrichment"], _ENRICHED, [program.name, live, "live-%"]
    )
    registered = {
        r["tid"]: r["created_at"]
        for r in await pool.fetch(_REGISTERED, settings.topics.transaction_status, "live-%", first_id)
    }
    lags = [
        (r["created_at"] - registered[r["tid"]]).total_seconds()
        for r in await pool.fetch(_ENRICHED_AT, settings.topics.webhooks, first_id)
        if r["tid"] in registered
    ]
    await pool.close()
    quantiles = statistics.quantiles(lags, n=100)
    return backlog, live_seconds, [quantiles[49], quantiles[98]]


async def _drained(pool: asyncpg.Pool, start: float, topics: Topics) -> float:
    """Seconds from ``start`` until no outbox row for this run's topics is left unpublished."""
    sql = "SELECT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL AND topic = ANY($1::text[]))"
    while await pool.fetchval(sql, topics.all()):
        await asyncio.sleep(0.1)
    return time.perf_counter() - start


async def seed_transactions(
    settings: Settings, program: Program, count: int, due: datetime, tag: str, per_customer: int = 10
) -> None:
    """``count`` transactions (``per_customer`` per customer; pending until ``due`` when the
    program has a pending period, else accepted), registered by the real domain rules and
    written by the real repository, so balances match the ledger."""
    pool = await create_pool(settings, size=1)
    for first in range(0, count, 5000):
        uow = UnitOfWork()
        events = []
        for n in range(first, min(first + 5000, count)):
            body = checkout(n, max(count // per_customer, 1)) | {"event_id": f"{tag}-{n}"}
            body["data"] |= {"transaction_id": f"{tag}-{n}", "auto_accept": due.isoformat()}
            events.append(CheckoutEvent.model_validate(body))
        async with pool.acquire() as conn, conn.transaction():
            await repository.load(
                conn,
                uow,
                Needs(customers=[(program.name, e.customer or "") for e in events]),
                parked_needs=lambda parked: Needs(),  # new transactions have nothing parked
            )
            for n, e in enumerate(events, start=first):
                # A second apart, so a customer's list has an order of its own.
                at = due - timedelta(seconds=count - n)
                effects = Effects(EventMeta(program.name, e.event_id or "", e.event_id or "", "checkout", at))
                customer = uow.customer(program.name, e.customer or "")
                uow.put_transaction(register_checkout(program, e, customer, None, effects))
                uow.record(effects)
            await repository.save(conn, uow, settings.relay_lanes)
    await pool.close()


async def bench_sweep(settings: Settings, program: Program, count: int) -> tuple[float, float]:
    """Seconds for the timer to expire ``count`` due transactions, and until published."""
    await seed_transactions(settings, program, count, datetime.now(UTC) - timedelta(minutes=1), "due")
    pool = await create_pool(settings)
    relay = OutboxRelay(settings, pool)
    await relay.start()
    pipeline = BatchPipeline(settings, {program.name: program}, pool, pending_lifecycle(), relay.notify)
    timer = PendingTimer(settings, {program.name: program}, pool, pipeline)
    start = time.perf_counter()
    swept = await timer.sweep()
    committed = time.perf_counter() - start
    published = await _drained(pool, start, settings.topics)
    await relay.stop()
    await pool.close()
    assert swept == count, f"swept {swept} of {count}"
    return committed, published


async def bench_events(
    settings: Settings, program: Program, count: int, action: str, module: str, status: str
) -> tuple[float, float]:
    """``count`` events of ``action`` on as many seeded transactions, through ``module``."""
    tag = action.replace("_", "-")
    await seed_transactions(settings, program, count, datetime.now(UTC) + timedelta(days=30), tag)
    events: list[dict[str, Any]] = [
        {
            "event_id": f"{tag}-event-{n}",
            "program": program.name,
            "customer": f"customer-{n % (count // 10)}",
            "action": action,
            "data": {"transaction_id": f"{tag}-{n}"},
        }
        for n in range(count)
    ]
    topic = settings.topics.lifecycle if module == "services.lifecycle" else settings.topics.refunds
    await produce(
        settings, topic, [json.dumps(e).encode() for e in events], [e["customer"].encode() for e in events]
    )
    return await run_engine(
        settings,
        module,
        "SELECT count(*) >= $2 FROM transactions"
        " WHERE program = $1 AND status = $3 AND transaction_id LIKE $4",
        [program.name, count, status, f"{tag}-%"],
    )


async def main() -> None:
    count = int(os.environ.get("LOYALTY_BENCH_EVENTS", "100000"))
    base = Settings()
    tag = time.strftime("bench%Y%m%d%H%M%S")
    earn = {"category_multipliers": {"shoes": 2}}
    program = Program.model_validate({"name": tag, "currency": "EUR", "earn": earn})
    pending = Program.model_validate(
        {"name": f"{tag}-pending", "currency": "EUR", "earn": earn, "pending_period": {"seconds": 3600}}
    )
    programs_file = Path(tempfile.mkdtemp()) / "programs.yaml"
    api, api_key = api_program(f"{tag}-api")
    programs_file.write_text(dump_programs({tag: program, pending.name: pending, api.name: api}))
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

    produced = await produce(settings, settings.topics.checkouts, bodies, keys)
    consumed = await probe_consume(settings, count)
    inserted = await probe_insert(settings, bodies)
    committed, published = await run_engine(
        settings, "services.checkout", "SELECT count(*) >= $2 FROM inbox WHERE program = $1", [tag, count]
    )
    swept, sweep_published = await bench_sweep(settings, pending, count)
    accepts = count // 2
    accepted, accepts_published = await bench_events(
        settings, pending, accepts, "checkout_accept", "services.lifecycle", "accepted"
    )
    enriched, live_seconds, lag = await bench_enrichment(settings, program, count)
    refunded, refunds_published = await bench_events(
        settings, program, accepts, "refund", "services.refunds", "refunded"
    )
    api_transactions = max(count // 5, PER_CUSTOMER * 20)
    await seed_transactions(settings, api, api_transactions, datetime.now(UTC), "api", PER_CUSTOMER)
    api_rows = await bench_read_api(settings, api, api_key, requests=max(count // 20, 1000))

    def rate(seconds: float, n: int = count) -> str:
        return f"{n / seconds:>10,.0f}/s"

    engine = count / published
    rows = [
        ("produce (aiokafka, acks=all)", produced, rate(produced), ""),
        ("probe: plain aiokafka consume", consumed, rate(consumed), f"{engine / (count / consumed):.3f}"),
        ("probe: plain batched INSERT", inserted, rate(inserted), f"{engine / (count / inserted):.3f}"),
        ("engine: state committed", committed, rate(committed), ""),
        ("engine: end to end (outbox published)", published, rate(published), "1.000"),
        (f"timer: sweep {count} due, committed", swept, rate(swept), ""),
        (f"timer: sweep {count} due, published", sweep_published, rate(sweep_published), ""),
        (f"lifecycle: {accepts} accepts, committed", accepted, rate(accepted, accepts), ""),
        (f"lifecycle: {accepts} accepts, published", accepts_published, rate(accepts_published, accepts), ""),
        (f"enrichment: {count} registrations, backlog", enriched, rate(enriched), ""),
        (f"enrichment live: {count // 10} checkouts", live_seconds, rate(live_seconds, count // 10), ""),
        (f"  lag p50 {lag[0]:.2f} s, p99 {lag[1]:.2f} s", 0.0, "", ""),
        (f"refunds: {accepts} full refunds, committed", refunded, rate(refunded, accepts), ""),
        (
            f"refunds: {accepts} full refunds, published",
            refunds_published,
            rate(refunds_published, accepts),
            "",
        ),
    ]
    print(f"\n{'stage':<40} {'seconds':>9} {'rate':>12}  engine/stage")
    for name, seconds, r, ratio in rows:
        print(f"{name:<40} {seconds:>9.2f} {r:>12}  {ratio}")
    print(f"\nread API: {api_transactions} transactions, {PER_CUSTOMER} per customer")
    for label, value in api_rows:
        print(f"{label:<40} {value}")


if __name__ == "__main__":
    asyncio.run(main())
