"""Health that means something (issue 13): ready under a backlog, a database outage longer
than ``max.poll.interval`` that leaves the consumer in its group and loses or doubles
nothing, a stop within its grace while the broker is down, and a start that joins as soon as
the broker is back. Outages are real: a TCP proxy cut between the service and its database
or broker (``tests/proxy.py``)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from services.adapters.health import HealthServer
from services.entrypoints.bootstrap import ConsumerProcess
from services.service_layer.actions import checkout_ingestion
from tests.harness import Engine
from tests.integration.conftest import Db
from tests.integration.test_checkout_ingestion import checkout
from tests.proxy import CuttableProxy, KafkaProxy

pytestmark = pytest.mark.integration


def only_process(engine: Engine) -> ConsumerProcess:
    (process,) = engine.processes.values()
    return process


async def http_status(port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    writer.close()
    return status


async def test_ready_while_draining_a_sustained_backlog(checkout_engine, program_factory, dbq: Db):
    program = program_factory("ready")
    total = 3000
    engine = checkout_engine(program, health_probe_seconds=0.3, batch_max_records=100)
    async with engine:
        process = only_process(engine)
        health = HealthServer(0, process.ready)
        await health.start()
        assert health._server is not None
        port = health._server.sockets[0].getsockname()[1]
        try:
            await engine.send_many(
                [checkout(f"c{n % 50}", f"t{n}", 1, event_id=f"e{n}") for n in range(total)]
            )
            statuses: list[int] = []
            while await dbq.count("inbox", program.name) < total:
                statuses.append(await http_status(port, "/readyz"))
                await asyncio.sleep(0.05)
            assert await http_status(port, "/healthz") == 200
        finally:
            await health.stop()
    assert len(statuses) >= 5, "the backlog drained before readiness could be polled"
    assert set(statuses) == {200}, f"not ready {statuses.count(503)} times out of {len(statuses)}"


async def test_database_outage_longer_than_max_poll_interval_keeps_the_group(
    kafka_bootstrap, database_url, program_factory, dbq: Db
):
    parts = urlsplit(database_url)
    proxy = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    via_proxy = urlunsplit(parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"))
    program = program_factory("long-outage")
    engine = Engine(
        kafka_bootstrap,
        via_proxy,
        [checkout_ingestion()],
        [program],
        retry_max_seconds=0.5,
        consumer_max_poll_interval_ms=6000,
        health_probe_seconds=0.5,
        ready_stuck_seconds=3,
    )
    ids = ["before"] + [f"during-{n}" for n in range(30)]
    async with engine:
        process = only_process(engine)
        (subscriber,) = process.broker.subscribers
        consumer = subscriber.consumer  # type: ignore[attr-defined]
        await engine.send(checkout("steady", "before", 10, event_id="before"))
        await engine.results(1)
        # Cut only once the relay has deleted what it published: a cut between its publish and
        # its delete makes it publish again (at least once), not the redelivery looked for here.
        topics = [engine.settings.topics.event_results, engine.settings.topics.webhooks]
        for _ in range(100):
            if not await dbq.pool.fetchval("SELECT count(*) FROM outbox WHERE topics && $1::text[]", topics):
                break
            await asyncio.sleep(0.1)
        member = (consumer._coordinator.member_id, consumer._coordinator.generation)
        assert process.ready()

        await proxy.cut()
        await engine.send_many(
            [checkout(f"c{n % 5}", f"during-{n}", 1, event_id=f"during-{n}") for n in range(30)]
        )
        await asyncio.sleep(15)  # 2.5 times max.poll.interval
        assert len(engine.received["event_results"]) == 1, "nothing can be applied while the database is down"
        assert not process.ready(), "a database outage makes the process not ready"
        assert (consumer._coordinator.member_id, consumer._coordinator.generation) == member, (
            "the consumer left its group during the outage"
        )

        await proxy.restore()
        results = await engine.final_results(ids, timeout=60)
        await asyncio.sleep(2)  # would-be redeliveries
        for _ in range(100):
            if process.ready():
                break
            await asyncio.sleep(0.1)
        assert process.ready(), process.readiness.reasons()
        assert (consumer._coordinator.member_id, consumer._coordinator.generation) == member
    await proxy.cut()

    outcomes = [v["outcome"] for v in engine.values("event_results")]
    assert outcomes == ["applied"] * len(ids), "every event applied exactly once, no redelivery"
    assert all(results[i]["outcome"] == "applied" for i in ids)
    assert await dbq.count("inbox", program.name) == len(ids)
    assert await dbq.count("points_ledger", program.name) == len(ids)
    assert await dbq.ledger_mismatches(program.name) == []


@pytest.mark.parametrize("when", ["running", "starting"])
async def test_stop_while_the_broker_is_down_ends_within_the_grace(
    kafka_bootstrap, database_url, program_factory, tmp_path: Path, when: str
):
    host, port = kafka_bootstrap.split(",")[0].rsplit(":", 1)
    proxy = KafkaProxy(host, int(port))
    await proxy.start()
    program = program_factory("stop")
    grace = 4.0
    engine = Engine(kafka_bootstrap, database_url, [checkout_ingestion()], [program])
    async with engine:
        await engine.stop_service()  # the consumer runs as its own OS process, via the proxy
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": proxy.bootstrap,
            "LOYALTY_SHUTDOWN_GRACE_SECONDS": str(grace),
            "LOYALTY_RETRY_MAX_SECONDS": "1",
        }
        if when == "starting":
            await proxy.cut()
            process = await engine.spawn("services.checkout", tmp_path, **env)
        else:
            process = await engine.spawn("services.checkout", tmp_path, **env)
            await engine.send(checkout("c", "t1", 10, event_id="first"))
            await engine.wait_for_result("first", timeout=60)
            assert proxy.rewrites > 0, "the clients reached the broker through the proxy"
            await proxy.cut()
        try:
            await asyncio.sleep(5)  # every client is retrying by now
            assert process.returncode is None
            sent = time.monotonic()
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), grace + 10)
            took = time.monotonic() - sent
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert code == 0
    assert took < grace + 3, f"stopped in {took:.1f}s, grace {grace}s"


async def test_a_consumer_started_while_the_broker_is_down_joins_when_it_returns(
    kafka_bootstrap, database_url, program_factory, tmp_path: Path
):
    host, port = kafka_bootstrap.split(",")[0].rsplit(":", 1)
    proxy = KafkaProxy(host, int(port))  # not listening yet: the broker is down
    program = program_factory("late-broker")
    engine = Engine(kafka_bootstrap, database_url, [checkout_ingestion()], [program])
    async with engine:
        await engine.stop_service()
        process = await engine.spawn(
            "services.checkout",
            tmp_path,
            KAFKA_BOOTSTRAP_SERVERS=proxy.bootstrap,
            LOYALTY_RETRY_MAX_SECONDS="5",
        )
        try:
            await asyncio.sleep(12)  # start-up retries, its back-off at the cap by now
            assert process.returncode is None
            await proxy.restore()
            back = time.monotonic()
            await engine.send(checkout("c", "t1", 10, event_id="after-return"))
            await engine.wait_for_result("after-return", timeout=30)
            took = time.monotonic() - back
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)
            await proxy.cut()
    assert took < 15, f"the result came {took:.1f}s after the broker returned"
