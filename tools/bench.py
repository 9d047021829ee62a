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
8. N/10 new checkouts produced at the steady-load rate (500/s) to checkout ingestion and
   enrichment running together, after a warm-up checkout: the lag from a registration's
   publication to its enrichment's (Kafka record timestamps; p50, p99).
Refunds:
9. N/2 full ``refund`` events through the refunds process, end to end.
Replicas:
10. N checkouts on fresh topics through 1 checkout process, then N more on other fresh topics
    through 2 (one group): both rates and their CPU.
Steady load (tools/bench_load.py):
11. 500 checkouts/s for 60 s to the checkout process: produce → result and → last webhook.
Read API (tools/bench_api.py):
12. list requests per second and latency over customers of 50 transactions, beside probes.

Every stage also reports CPU milliseconds per event of the engine's processes, of PostgreSQL
(all its processes) and of the broker, from the processes' own counters (tools/cpu.py): CPU
per event holds on a shared machine where rates do not.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.adapters.kafka import client_options
from services.adapters.postgres import create_pool
from services.adapters.relay import OutboxRelay
from services.adapters.repository import PostgresStorage, PostgresStore
from services.admin import create_topics, run_migrations
from services.config.programs import dump_programs
from services.config.settings import Settings, Topics
from services.contract.inbound import CheckoutEvent
from services.domain.checkout import register_checkout
from services.domain.effects import Effects, EventMeta
from services.domain.program import Program
from services.entrypoints.bootstrap import tune_garbage_collector
from services.entrypoints.timer import PendingTimer
from services.service_layer.actions import pending_lifecycle, to_checkout
from services.service_layer.pipeline import BatchPipeline
from services.service_layer.unit_of_work import UnitOfWork
from tools.bench_api import PER_CUSTOMER, api_program, bench_read_api
from tools.bench_core import core_rate
from tools.bench_import import bench_import
from tools.bench_load import bench_load, send_paced
from tools.bench_load import report as load_report
from tools.cpu import Cost, machine, snapshot, speed_probe

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
        **client_options(settings),
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
        **client_options(settings),
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
    settings: Settings,
    module: str | list[str],
    done_sql: str,
    args: list[Any],
    feed: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> tuple[float, float, Cost]:
    """Run consumer processes from start until ``done_sql`` is true (state committed), then
    until no outbox row is left unpublished; return both times in seconds, and the CPU of each
    component from the processes' start until then (read before they are stopped). ``feed``,
    when given, produces the stage's events once the processes are started."""
    modules = [module] if isinstance(module, str) else module
    poller = await asyncpg.connect(settings.database_url)
    polls = [await poller.fetchval("SELECT pg_backend_pid()")]  # its CPU is the bench's
    env = {**os.environ, **settings.as_env(), "LOYALTY_LOG_LEVEL": "WARNING"}
    before = snapshot(bench_backends=polls)
    start = time.perf_counter()
    processes = [
        await asyncio.create_subprocess_exec(sys.executable, "-m", m, cwd=ROOT, env=env) for m in modules
    ]
    committed = published = 0.0
    cost = Cost()
    feeding = asyncio.create_task(feed()) if feed is not None else None
    try:
        while not committed:
            if await poller.fetchval(done_sql, *args):
                committed = time.perf_counter() - start
            elif time.perf_counter() - start > DEADLINE_SECONDS or any(
                p.returncode is not None for p in processes
            ):
                raise RuntimeError(f"{modules} did not finish: {done_sql} {args}")
            if feeding is not None and feeding.done():
                feeding.result()  # a failed feed fails the stage
            await asyncio.sleep(0.1)
        published = await _drained(poller, start, settings.topics)
        cost = snapshot([p.pid for p in processes], bench_backends=polls) - before
    finally:
        if feeding is not None:
            feeding.cancel()
            await asyncio.gather(feeding, return_exceptions=True)
        for process in processes:
            process.terminate()
            await process.wait()
        await poller.close()
    return committed, published, cost


_ENRICHED = (
    "SELECT count(*) >= $2 FROM transactions"
    " WHERE program = $1 AND transaction_id LIKE $3 AND doc->>'enriched_at' IS NOT NULL"
)


async def _published(settings: Settings, prefix: str) -> tuple[dict[str, int], dict[str, int]]:
    """Record timestamps (ms, set by the relay's producer when it publishes) of the first status
    change and of the ``transaction.enriched`` webhook of every transaction id starting with
    ``prefix``, read back from the topics: published outbox rows are deleted by default, so the
    outbox no longer keeps them."""
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        group_id=None,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    topics = (settings.topics.transaction_status, settings.topics.webhooks)
    partitions = [TopicPartition(t, p) for t in topics for p in range(settings.topic_partitions)]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    ends = await consumer.end_offsets(partitions)
    registered: dict[str, int] = {}
    enriched: dict[str, int] = {}
    while any([await consumer.position(tp) < end for tp, end in ends.items()]):
        for tp, records in (await consumer.getmany(timeout_ms=1000, max_records=BATCH)).items():
            for r in records:
                if tp.topic == settings.topics.transaction_status:
                    tid = (r.key or b"").decode()
                    if tid.startswith(prefix):
                        registered.setdefault(tid, r.timestamp)
                elif ("webhook-type", b"transaction.enriched") in r.headers:
                    tid = json.loads(r.value or b"{}")["data"]["transaction"]["transaction_id"]
                    if tid.startswith(prefix):
                        enriched.setdefault(tid, r.timestamp)
    await consumer.stop()
    return registered, enriched


async def bench_enrichment(
    settings: Settings, program: Program, count: int, rate: int
) -> tuple[float, float, list[float], Cost, Cost]:
    """Enrichments per second from the checkout stage's backlog of registrations; then the lag
    (registration published to enrichment published) with checkout and enrichment running live,
    checkouts produced at ``rate`` a second once both have enriched a warm-up checkout; the CPU
    of each."""
    backlog, _, backlog_cost = await run_engine(
        settings, "services.enrichment", _ENRICHED, [program.name, count, "order-%"]
    )
    live = count // 10

    def live_body(n: int, name: str) -> dict[str, Any]:
        body = checkout(n, max(live // 10, 1)) | {"event_id": f"{name}-{n}"}
        body["data"]["transaction_id"] = f"{name}-{body['data']['transaction_id']}"
        return body

    async def feed() -> None:
        producer = AIOKafkaProducer(**client_options(settings), acks="all")
        await producer.start()
        try:
            # Not timed: both processes up, assigned and through their first batch.
            await send_paced(producer, settings.topics.checkouts, [live_body(0, "warmup")], rate)
            conn = await asyncpg.connect(settings.database_url)
            try:
                while not await conn.fetchval(_ENRICHED, program.name, 1, "warmup-%"):
                    await asyncio.sleep(0.05)
            finally:
                await conn.close()
            await send_paced(
                producer, settings.topics.checkouts, [live_body(n, "live") for n in range(live)], rate
            )
        finally:
            await producer.stop()

    live_seconds, _, live_cost = await run_engine(
        settings,
        ["services.checkout", "services.enrichment"],
        _ENRICHED,
        [program.name, live, "live-%"],
        feed,
    )
    registered, enriched = await _published(settings, "live-")
    lags = [(at - registered[tid]) / 1000 for tid, at in enriched.items() if tid in registered]
    assert len(lags) == live, f"{len(lags)} enrichment lags of {live} live checkouts"
    quantiles = statistics.quantiles(lags, n=100, method="inclusive")
    return backlog, live_seconds, [quantiles[49], quantiles[98]], backlog_cost, live_cost


async def _drained(pool: asyncpg.Pool | asyncpg.Connection, start: float, topics: Topics) -> float:
    """Seconds from ``start`` until no outbox row for this run's topics is left unpublished."""
    sql = "SELECT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL AND topics && $1::text[])"
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
            store = PostgresStore(conn, settings.relay_lanes)
            await store.lock_customers(uow, sorted({(program.name, e.customer or "") for e in events}))
            for n, e in enumerate(events, start=first):
                # A second apart, so a customer's list has an order of its own.
                at = due - timedelta(seconds=count - n)
                effects = Effects(EventMeta(program.name, e.event_id or "", "checkout", at))
                customer = uow.customer(program.name, e.customer or "")
                uow.put_transaction(register_checkout(program, to_checkout(e), customer, None, effects))
                uow.record(effects)
            await store.save(uow)
    await pool.close()


async def bench_sweep(settings: Settings, program: Program, count: int) -> tuple[float, float, Cost]:
    """Seconds for the timer to expire ``count`` due transactions, and until published; the CPU
    of each component (the engine is this process: the timer and its relay run in it)."""
    await seed_transactions(settings, program, count, datetime.now(UTC) - timedelta(minutes=1), "due")
    pool = await create_pool(settings)
    relay = OutboxRelay(settings, pool)
    await relay.start()
    pipeline = BatchPipeline(
        settings, {program.name: program}, PostgresStorage(pool, settings), pending_lifecycle(), relay.notify
    )
    timer = PendingTimer(settings, {program.name: program}, pool, pipeline)
    before = snapshot(in_process=True)
    start = time.perf_counter()
    swept = await timer.sweep()
    committed = time.perf_counter() - start
    published = await _drained(pool, start, settings.topics)
    cost = snapshot(in_process=True) - before
    await relay.stop()
    await pool.close()
    assert swept == count, f"swept {swept} of {count}"
    return committed, published, cost


async def bench_events(
    settings: Settings, program: Program, count: int, action: str, module: str, status: str
) -> tuple[float, float, Cost]:
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


async def bench_replicas(
    settings: Settings, program: Program, count: int, replicas: int
) -> tuple[float, float, Cost]:
    """``count`` checkouts (new customers) on fresh topics, consumed by ``replicas`` checkout
    processes in one group, from their start until every outbox row is published."""
    prefix = f"{settings.group_prefix}r{replicas}."
    run = settings.model_copy(update={"topics": Topics().prefixed(prefix), "group_prefix": prefix})
    await create_topics(run)
    events = [checkout(n, max(count // 10, 1)) for n in range(count)]
    for n, body in enumerate(events):
        body["event_id"] = f"r{replicas}-{n}"
        body["customer"] = f"r{replicas}-{body['customer']}"
        body["data"]["transaction_id"] = f"r{replicas}-order-{n}"
    await produce(
        run,
        run.topics.checkouts,
        [json.dumps(b).encode() for b in events],
        [b["customer"].encode() for b in events],
    )
    conn = await asyncpg.connect(settings.database_url)
    inbox = "SELECT count(*) FROM inbox WHERE program = $1"
    base = await conn.fetchval(inbox, program.name)
    await conn.close()
    return await run_engine(
        run,
        ["services.checkout"] * replicas,
        f"{inbox.replace('count(*)', 'count(*) >= $2')}",
        [program.name, base + count],
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
    await create_topics(settings)

    customers = max(count // 10, 1)
    events = [checkout(n, customers) for n in range(count)]
    bodies = [json.dumps(e).encode() for e in events]
    keys = [e["customer"].encode() for e in events]
    # The in-process stages (core alone, the timer's sweep) run as a consumer process does.
    tune_garbage_collector()
    print(machine())
    print(
        f"bench: {count} checkouts, {customers} customers, {settings.topic_partitions} partitions, run {tag}"
    )

    # The machine's speed before each stage (tools/cpu.speed_probe): CPU per event moves with it.
    speeds: list[tuple[str, float]] = []

    def probe(stage: str) -> None:
        speeds.append((stage, speed_probe()))

    probe("core")
    core_seconds, core_events = core_rate(settings, program, bodies, keys)
    stage = snapshot()
    produced = await produce(settings, settings.topics.checkouts, bodies, keys)
    produce_cost, stage = snapshot() - stage, snapshot()
    consumed = await probe_consume(settings, count)
    consume_cost, stage = snapshot() - stage, snapshot()
    inserted = await probe_insert(settings, bodies)
    insert_cost = snapshot() - stage
    probe("checkouts")
    committed, published, checkout_cost = await run_engine(
        settings, "services.checkout", "SELECT count(*) >= $2 FROM inbox WHERE program = $1", [tag, count]
    )
    probe("sweep")
    swept, sweep_published, sweep_cost = await bench_sweep(settings, pending, count)
    accepts = count // 2
    probe("accepts")
    accepted, accepts_published, accepts_cost = await bench_events(
        settings, pending, accepts, "checkout_accept", "services.lifecycle", "accepted"
    )
    load_rate = int(os.environ.get("LOYALTY_BENCH_LOAD_RATE", "500"))
    probe("enrichment")
    enriched, live_seconds, lag, enrich_cost, live_cost = await bench_enrichment(
        settings, program, count, load_rate
    )
    probe("refunds")
    refunded, refunds_published, refunds_cost = await bench_events(
        settings, program, accepts, "refund", "services.refunds", "refunded"
    )
    probe("1 replica")
    one = await bench_replicas(settings, program, count, 1)
    probe("2 replicas")
    two = await bench_replicas(settings, program, count, 2)
    load_seconds = float(os.environ.get("LOYALTY_BENCH_LOAD_SECONDS", "60"))
    load_customers = max(int(load_rate * load_seconds) // 10, 1)

    def load_body(n: int) -> dict[str, Any]:
        body = checkout(n, load_customers)
        name = "warmup" if n < 0 else str(n)
        body["event_id"] = f"load-{name}"
        body["customer"] = f"load-{body['customer']}"
        body["data"]["transaction_id"] = f"load-order-{name}"
        return body

    probe("steady load")
    load = await bench_load(settings, f"{tag}.load", load_body, load_rate, load_seconds)
    api_transactions = max(count // 5, PER_CUSTOMER * 20)
    await seed_transactions(settings, api, api_transactions, datetime.now(UTC), "api", PER_CUSTOMER)
    api_rows = await bench_read_api(settings, api, api_key, requests=max(count // 20, 1000))
    probe("import")
    import_seconds, imported, import_cost = await bench_import(settings, program, count)
    probe("end")

    engine = count / published
    core = Cost(wall=core_seconds, engine=core_seconds)
    # (stage, seconds, events, engine end-to-end / stage, CPU over the stage). A stage's CPU is
    # read once, at its end (outbox published), so its "committed" row shows none.
    rows: list[tuple[str, float, int, str, Cost | None]] = [
        ("produce (aiokafka, acks=all)", produced, count, "", produce_cost),
        (
            "probe: plain aiokafka consume",
            consumed,
            count,
            f"{engine / (count / consumed):.3f}",
            consume_cost,
        ),
        ("probe: plain batched INSERT", inserted, count, f"{engine / (count / inserted):.3f}", insert_cost),
        ("engine: state committed", committed, count, "", None),
        ("engine: end to end (outbox published)", published, count, "1.000", checkout_cost),
        ("core alone: decode + batch core, no I/O", core_seconds, count, f"{engine / core_events:.3f}", core),
        (f"timer: sweep {count} due, committed", swept, count, "", None),
        (f"timer: sweep {count} due, published", sweep_published, count, "", sweep_cost),
        (f"lifecycle: {accepts} accepts, committed", accepted, accepts, "", None),
        (f"lifecycle: {accepts} accepts, published", accepts_published, accepts, "", accepts_cost),
        (f"enrichment: {count} registrations, backlog", enriched, count, "", enrich_cost),
        (f"enrichment live: {count // 10} at {load_rate}/s", live_seconds, count // 10, "", live_cost),
        (f"refunds: {accepts} full refunds, committed", refunded, accepts, "", None),
        (f"refunds: {accepts} full refunds, published", refunds_published, accepts, "", refunds_cost),
        (f"checkouts, 1 replica: {count}, committed", one[0], count, "", None),
        (f"checkouts, 1 replica: {count}, published", one[1], count, "", one[2]),
        (f"checkouts, 2 replicas: {count}, committed", two[0], count, "", None),
        (f"checkouts, 2 replicas: {count}, published", two[1], count, "", two[2]),
        (f"steady load: {load.sent} at {load_rate}/s", load.cost.wall, load.sent, "", load.cost),
        (f"import: {imported} transactions (file of {count})", import_seconds, imported, "", import_cost),
    ]
    print(
        f"\n{'':<44} {'':>8} {'':>11} {'engine/':>7}   CPU ms per event"
        f"\n{'stage':<44} {'seconds':>8} {'rate':>11} {'stage':>7}"
        f" {'engine':>7} {'pg':>7} {'broker':>7} {'total':>7} | {'bench':>7}"
    )
    notes: list[str] = []
    for name, seconds, n, ratio, cost in rows:
        line = f"{name:<44} {seconds:>8.2f} {n / seconds:>9,.0f}/s {ratio:>7}"
        if cost is not None:
            ms = cost.per_event_ms(n)
            line += "".join(f" {ms[k]:>7.3f}" for k in ("engine", "postgres", "broker", "total"))
            line += f" | {ms['bench']:>7.3f}"
            notes += [f"{name}: {note}" for note in cost.notes]
        print(line)
    print(
        "\nCPU: engine = the stage's consumer processes (the bench's own process for the in-process"
        " sweep and core rows); pg = every postgres process (exited backends via the postmaster's"
        " reaped-children time); broker = the kafka.Kafka JVM; total = engine + pg + broker;"
        " bench = the bench's own process (producer, probes, pollers), not in total. Consumer"
        " stages include process start-up."
    )
    print(
        "machine speed before each stage (tools/cpu.speed_probe, CPU ms of a fixed Python workload,"
        " lower is faster): " + ", ".join(f"{stage} {ms:.1f}" for stage, ms in speeds)
    )
    speedup = two[1] and one[1] / two[1]
    cpu_ratio = one[2].total and two[2].total / one[2].total
    print(
        f"replicas: 2 replicas ran {speedup:.2f}x the rate of 1 ({count / one[1]:,.0f}/s →"
        f" {count / two[1]:,.0f}/s end to end), at {cpu_ratio:.2f}x the total CPU per event"
    )
    print(
        "enrichment live lag (registration published → enrichment published):"
        f" p50 {lag[0]:.2f} s, p99 {lag[1]:.2f} s"
    )
    for line in load_report(load):
        print(line)
    for note in notes:
        print(note)
    print(f"\nread API: {api_transactions} transactions, {PER_CUSTOMER} per customer")
    for label, value in api_rows:
        print(f"{label:<40} {value}")


if __name__ == "__main__":
    asyncio.run(main())
