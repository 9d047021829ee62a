"""The composition root (services/entrypoints/bootstrap.py) on the real broker and database:
a consumer process holds one pool, one relay and one broker, whatever its number of handlers,
and the enrichment process's two subscribers share one consumer group across two topics."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import anyio.to_thread
import pytest

from services.entrypoints import bootstrap
from services.entrypoints.bootstrap import ConsumerProcess
from services.entrypoints.timer import PendingTimer, pending_timer
from services.service_layer.actions import (
    checkout_ingestion,
    enrichment,
    pending_lifecycle,
    refunds,
    transaction_enrichment,
)
from tests.harness import Engine, make_program
from tests.integration.conftest import Db
from tests.integration.test_catalog import catalog_event, send_catalog

pytestmark = pytest.mark.integration


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """How many pools, relays and brokers the composition root creates."""
    counts: Counter[str] = Counter()

    def counting(name: str, make: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return make(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(bootstrap, "create_pool", counting("pool", bootstrap.create_pool))
    monkeypatch.setattr(bootstrap, "OutboxRelay", counting("relay", bootstrap.OutboxRelay))
    monkeypatch.setattr(bootstrap, "KafkaBroker", counting("broker", bootstrap.KafkaBroker))
    yield counts


def assignments(process: ConsumerProcess) -> dict[str, set[tuple[str, int]]]:
    """Each subscriber's assigned partitions, by the topic it subscribes to."""
    out: dict[str, set[tuple[str, int]]] = {}
    for sub in process.broker.subscribers:
        assert sub.consumer is not None
        (topic,) = sub.topic_names_for_subscribe
        out[topic] = {(tp.topic, tp.partition) for tp in sub.consumer.assignment()}
    return out


async def settled(*processes: ConsumerProcess, topics: list[str], partitions: int) -> None:
    """Wait until the group's members hold each partition of each topic exactly once, each
    member only partitions of the topic it subscribes to."""

    def done() -> bool:
        held: Counter[tuple[str, int]] = Counter()
        for process in processes:
            for topic, assigned in assignments(process).items():
                if any(t != topic for t, _ in assigned):
                    return False
                held.update(assigned)
        return held == Counter((t, p) for t in topics for p in range(partitions))

    for _ in range(400):
        if done():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"group did not settle: {[assignments(p) for p in processes]}")


async def test_enrichment_runs_one_pool_one_relay_one_broker_with_two_subscribers(
    kafka_bootstrap, database_url, dbq: Db, built: Counter[str]
):
    program = make_program(f"boot-{uuid.uuid4().hex[:6]}")
    # As ``python -m services.enrichment`` runs it: its two handlers in one process.
    engine = Engine(kafka_bootstrap, database_url, [enrichment(), transaction_enrichment()], [program])
    async with engine:
        process = engine.processes["enrichment"]
        assert list(engine.processes) == ["enrichment"]
        assert built == {"pool": 1, "relay": 1, "broker": 1}
        assert process.pool is not None and process.relay is not None
        assert {p.storage.pool for p in process.pipelines.values()} == {process.pool}
        assert all(p.on_commit == process.relay.notify for p in process.pipelines.values())
        catalog, status = engine.input("catalog"), engine.input("transaction_status")
        subscribers = process.broker.subscribers
        assert sorted(s.topic_names_for_subscribe[0] for s in subscribers) == sorted([catalog, status])
        # One consumer group across both topics, as before (and as deploy/k8s/enrichment.yaml's
        # lag triggers name it).
        assert {s.group_id for s in subscribers} == {f"{engine.settings.group_prefix}enrichment"}
        # The broker holds each consumer's fetches as the settings say (docs/batching.md), not
        # for Kafka's defaults (500 ms, 1 byte).
        settings = engine.settings
        held = {
            (s.consumer._fetcher._fetch_max_wait_ms, s.consumer._fetcher._fetch_min_bytes)
            for s in subscribers
        }  # type: ignore[attr-defined]
        assert (
            held == {(settings.consumer_fetch_max_wait_ms, settings.consumer_fetch_min_bytes)} != {(500, 1)}
        )
        await settled(process, topics=[catalog, status], partitions=3)

        await send_catalog(engine, catalog_event("product_upsert", "p1", product_id="001", category="shirts"))
        # Checkout ingestion beside it (its own process, as in production) registers a
        # transaction; enrichment's second subscriber picks the registration up.
        engine.handlers.append(checkout_ingestion())
        await engine.start_service("checkout-ingestion")
        item = {"product_id": "001", "subtotal": 10}
        data = {"transaction_id": "T", "total": 10, "items": [item]}
        buy = {"action": "checkout", "event_id": "buy", "customer": "ann", "data": data}
        await engine.send(buy, topic="checkouts")
        results = await engine.final_results(["p1", "buy", "enrich:T"])

        # A second replica joins the group: the group rebalances, every partition of each
        # topic goes to exactly one member subscribed to that topic, and both keep working.
        replica = ConsumerProcess(engine.settings, [enrichment(), transaction_enrichment()], engine.programs)
        await replica.start()
        try:
            await settled(process, replica, topics=[catalog, status], partitions=3)
            for n in range(6):
                await engine.send(
                    catalog_event("product_upsert", f"p-{n}", product_id=f"00{n}", category=f"c{n}"),
                    key=f"00{n}",
                    topic="catalog",
                )
                await engine.send(
                    {"action": "checkout", "event_id": f"buy{n}", "customer": f"c{n}"}
                    | {"data": {"transaction_id": f"T{n}", "total": 10}},
                    topic="checkouts",
                )
            late = await engine.final_results(
                [f"p-{n}" for n in range(6)] + [f"enrich:T{n}" for n in range(6)]
            )
        finally:
            await replica.stop()

    assert {results[e]["outcome"] for e in ("p1", "buy", "enrich:T")} == {"applied"}
    assert {r["outcome"] for r in late.values()} == {"applied"}
    txn = await dbq.transaction(program.name, "T")
    assert txn["items"][0]["category"] == "shirts" and txn["enriched_at"] is not None


async def test_lifecycle_process_runs_its_timer_as_a_peer_on_its_own_pool(
    kafka_bootstrap, database_url, built: Counter[str]
):
    program = make_program(f"boot-{uuid.uuid4().hex[:6]}", pending_period={"seconds": 60})
    # As ``python -m services.lifecycle`` runs it.
    engine = Engine(kafka_bootstrap, database_url, [pending_lifecycle()], [program])
    engine.peers["pending-lifecycle"] = [pending_timer]
    async with engine:
        process = engine.processes["pending-lifecycle"]
        assert built == {"pool": 1, "relay": 1, "broker": 1}
        (timer,) = process.peers
        assert isinstance(timer, PendingTimer)
        assert timer.storage.pool is process.pool
        assert timer.pipeline is process.pipelines["lifecycle"]
        assert process.ready()
    assert process.peers == [] and process.pool is None and not process.ready()


async def test_a_peer_needs_a_handler_of_its_process(kafka_bootstrap, database_url):
    """The timer beside a process without the lifecycle handler fails to start, and the
    process stops what it had started."""
    program = make_program(f"boot-{uuid.uuid4().hex[:6]}")
    engine = Engine(kafka_bootstrap, database_url, [refunds()], [program])
    async with engine:
        process = ConsumerProcess(engine.settings, [refunds()], engine.programs, [pending_timer])
        with pytest.raises(LookupError, match="lifecycle"):
            await process.start()
        assert process.pool is None and process.relay is None and not process.started


async def test_a_batch_is_handled_without_a_worker_thread(
    kafka_bootstrap, database_url, monkeypatch: pytest.MonkeyPatch
):
    """The handler takes the polled records with no dependency injection: with it, FastStream
    resolved the handler's message parameter in a worker thread, a hop per batch
    (docs/runtime.md)."""
    hops: list[Any] = []
    run_sync = anyio.to_thread.run_sync

    async def counting(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(func)
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    program = make_program(f"boot-{uuid.uuid4().hex[:6]}")
    engine = Engine(kafka_bootstrap, database_url, [checkout_ingestion()], [program])
    async with engine:
        data = {"transaction_id": "T", "total": 10}
        await engine.send({"action": "checkout", "event_id": "buy", "customer": "ann", "data": data})
        results = await engine.final_results(["buy"])
    assert results["buy"]["outcome"] == "applied"
    assert hops == []
