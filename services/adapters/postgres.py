"""PostgreSQL adapter: the pool, and running a unit of work in a transaction with retries.

Invalid is not transient (docs/retries.md): only failures that may go away by themselves
(connection lost, database restarting, deadlock, serialization failure) are retried, with
capped exponential back-off and without end, so nothing is skipped. Anything else propagates.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg
import structlog

from services.config.settings import Settings

log = structlog.get_logger(__name__)
T = TypeVar("T")

# SQLSTATE classes and codes worth retrying: connection exception, insufficient resources,
# operator intervention (shutdown, crash recovery), serialization failure, deadlock.
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "53", "57P")
_TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03"}


def json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> str:
    return json.dumps(value, default=json_default, separators=(",", ":"))


class RetryableConflict(Exception):
    """A concurrent writer got there first (e.g. inserted the same new transaction):
    the unit of work is retried whole and then sees the other writer's row."""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, RetryableConflict):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", "") or ""
        return state in _TRANSIENT_SQLSTATES or state.startswith(_TRANSIENT_SQLSTATE_PREFIXES)
    return isinstance(exc, OSError | asyncpg.InterfaceError | asyncio.TimeoutError | ConnectionError)


async def init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=dumps, decoder=json.loads, schema="pg_catalog")


class Backoff:
    def __init__(self, settings: Settings) -> None:
        self.initial = settings.retry_initial_seconds
        self.cap = settings.retry_max_seconds
        self.delay = self.initial

    async def wait(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.cap)


async def retrying(
    what: str,
    settings: Settings,
    attempt: Callable[[], Awaitable[T]],
    retry_on: Callable[[BaseException], bool] = is_transient,
) -> T:
    """Run ``attempt`` until it succeeds or fails with an error ``retry_on`` rejects."""
    backoff = Backoff(settings)
    while True:
        try:
            return await attempt()
        except Exception as exc:
            if not retry_on(exc):
                raise
            log.warning("transient_failure_retrying", what=what, error=repr(exc), delay=backoff.delay)
            await backoff.wait()


async def create_pool(settings: Settings, size: int | None = None) -> asyncpg.Pool:
    async def connect() -> asyncpg.Pool:
        return await asyncpg.create_pool(
            settings.database_url,
            min_size=1,
            max_size=size or settings.db_pool_size,
            init=init_connection,
        )

    return await retrying("connect_database", settings, connect)


async def in_transaction(
    pool: asyncpg.Pool, settings: Settings, what: str, work: Callable[[asyncpg.Connection], Awaitable[T]]
) -> T:
    """Run ``work`` in one database transaction, retried whole on transient failures."""

    async def attempt() -> T:
        async with pool.acquire() as conn, conn.transaction():
            return await work(conn)

    return await retrying(what, settings, attempt)
