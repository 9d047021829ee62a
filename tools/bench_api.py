"""The read API stage of ``make bench``.

A program's customers get ``PER_CUSTOMER`` transactions each (registered by the real domain
rules and repository), and ``python -m services.api`` (production settings, one worker) serves
``CONCURRENCY`` keep-alive clients asking for first pages of ``PAGE`` transactions of random
customers. Two probes in the same run give the ratios:
- the same list query straight through asyncpg, at the same concurrency (the database's limit);
- ``GET /healthz`` through the same HTTP client and server (the HTTP stack's limit).
It also times what splicing stored documents into a page saves over parsing and re-encoding them.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import orjson

from services.api import queries
from services.api.auth import api_key_digest, new_api_key
from services.config.settings import Settings
from services.contract.api import TransactionFilters
from services.domain.program import Program
from services.domain.transaction import Transaction

ROOT = Path(__file__).resolve().parents[1]
PER_CUSTOMER = 50
PAGE = 25
CONCURRENCY = 16


@dataclass(frozen=True)
class Load:
    requests: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: int) -> float:
        return statistics.quantiles(self.latencies, n=100)[p - 1] * 1000


async def load(requests: int, call: Callable[[int], Awaitable[None]]) -> Load:
    """``requests`` calls over ``CONCURRENCY`` workers; each call's latency in seconds."""
    latencies: list[float] = []
    queue = iter(range(requests))

    async def worker() -> None:
        for n in queue:
            started = time.perf_counter()
            await call(n)
            latencies.append(time.perf_counter() - started)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return Load(requests, time.perf_counter() - start, latencies)


class KeepAliveClient:
    """A minimal HTTP/1.1 client on one kept-alive connection. The load generator shares the
    machine with the server, so it must cost far less than the server per request: a
    full-featured client (httpx) was itself the limit at ~300 requests/s on 2 cores."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        self.headers = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self._reader, self._writer
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{self.headers}\r\n".encode())
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await reader.readexactly(length)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _start_api(settings: Settings, port: int) -> asyncio.subprocess.Process:
    env = {**os.environ, **settings.as_env(), "LOYALTY_API_PORT": str(port), "LOYALTY_LOG_LEVEL": "WARNING"}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.api", cwd=ROOT, env=env)
    for _ in range(300):
        client = KeepAliveClient(port, {})
        try:
            if (await client.get("/readyz"))[0] == 200:
                return process
        except (OSError, IndexError, ValueError, asyncio.IncompleteReadError):
            pass  # not listening yet
        finally:
            await client.close()
        await asyncio.sleep(0.1)
    process.terminate()
    raise RuntimeError("the read API did not become ready in 30 s")


def splice_saving(docs: list[bytes], rounds: int = 200) -> tuple[float, float]:
    """Milliseconds per page: splicing stored documents, against parsing and re-encoding them."""
    start = time.perf_counter()
    for _ in range(rounds):
        b",".join(docs)
    spliced = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(rounds):
        b",".join(Transaction.from_document(orjson.loads(d)).document().encode() for d in docs)
    reencoded = time.perf_counter() - start
    return spliced / rounds * 1000, reencoded / rounds * 1000


async def bench_read_api(
    settings: Settings, program: Program, key: str, requests: int
) -> list[tuple[str, str]]:
    """Figures of the stage as (label, value) rows; ``program`` already has its transactions."""
    customers = [
        r["customer_id"]
        for r in await _fetch(
            settings, "SELECT DISTINCT customer_id FROM transactions WHERE program = $1", program.name
        )
    ]
    rng = random.Random(7)
    picks = [rng.choice(customers) for _ in range(requests)]
    port = _free_port()
    process = await _start_api(settings, port)
    clients = [KeepAliveClient(port, {"Authorization": f"Bearer {key}"}) for _ in range(CONCURRENCY)]
    idle = asyncio.Queue[KeepAliveClient]()
    for client in clients:
        idle.put_nowait(client)

    async def get(path: str) -> bytes:
        client = await idle.get()
        try:
            status, body = await client.get(path)
        finally:
            idle.put_nowait(client)
        if status != 200:
            raise RuntimeError(f"unexpected answer to {path}: {status} {body[:200]!r}")
        return body

    def page_path(n: int) -> str:
        return f"/v1/programs/{program.name}/customers/{picks[n]}/transactions?limit={PAGE}"

    async def list_page(n: int) -> None:
        await get(page_path(n))

    async def healthz(n: int) -> None:
        await get("/healthz")

    try:
        # Warm-up (connections, query plans, caches), checking that pages are full.
        for n in range(CONCURRENCY * 10):
            assert len(json.loads(await get(page_path(n)))["data"]) == PAGE
        api = await load(requests, list_page)
        http = await load(requests, healthz)
    finally:
        for client in clients:
            await client.close()
        process.terminate()
        await process.wait()
    pool = await asyncpg.create_pool(settings.database_url, min_size=CONCURRENCY, max_size=CONCURRENCY)
    filters = TransactionFilters(limit=PAGE)

    async def sql_page(n: int) -> None:
        async with pool.acquire() as conn:
            await queries.transaction_docs(conn, program.name, picks[n], filters, PAGE + 1)

    sql = await load(requests, sql_page)
    async with pool.acquire() as conn:
        docs = await queries.transaction_docs(conn, program.name, picks[0], filters, PAGE)
    await pool.close()
    spliced, reencoded = splice_saving(docs)
    return [
        (f"read API: list, {PAGE} per page", f"{api.rate:,.0f} req/s"),
        ("  latency p50 / p99", f"{api.percentile(50):.1f} / {api.percentile(99):.1f} ms"),
        ("probe: same query via asyncpg", f"{sql.rate:,.0f} q/s  (API/probe {api.rate / sql.rate:.2f})"),
        ("probe: GET /healthz", f"{http.rate:,.0f} req/s  (API/probe {api.rate / http.rate:.2f})"),
        ("page: splice vs parse+re-encode", f"{spliced:.3f} ms vs {reencoded:.2f} ms per page"),
    ]


async def _fetch(settings: Settings, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def api_program(name: str) -> tuple[Program, str]:
    """A program for the stage, with a fresh API key (returned in clear)."""
    key = new_api_key()
    program = Program.model_validate(
        {"name": name, "currency": "EUR", "api_keys_sha256": [api_key_digest(key)]}
    )
    return program, key
