"""PostgreSQL adapter: the pool, and running a unit of work in a transaction with retries.

Invalid is not transient (docs/retries.md): only failures that may go away by themselves
(connection lost, database restarting, deadlock, serialization failure) are retried, with
capped exponential back-off with full jitter, so nothing is skipped. Anything else propagates.
Inside a ``RetryScope`` (a consumer's batch) retrying stops at the scope's deadline and the
last transient error propagates, so the caller can go back to polling Kafka and try again.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg
import orjson
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


def is_unreachable(exc: BaseException) -> bool:
    """A transient failure that says the database is away (not a deadlock or a conflict)."""
    if isinstance(exc, asyncpg.PostgresError):
        return (getattr(exc, "sqlstate", "") or "").startswith(("08", "57P"))
    return isinstance(exc, OSError | asyncpg.InterfaceError | asyncio.TimeoutError | ConnectionError)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """asyncpg has rolled back any open transaction; nothing else to undo (``create_pool``)."""


async def init_connection(conn: asyncpg.Connection) -> None:
    # orjson decodes what json.dumps wrote (money is a string in every document) at a
    # fraction of the cost: a batch reads the documents of every transaction it touches.
    await conn.set_type_codec("jsonb", encoder=dumps, decoder=orjson.loads, schema="pg_catalog")


class Backoff:
    """Capped exponential back-off with full jitter: wait ``n`` (from 0) sleeps a delay drawn
    uniformly from ``[0, min(cap, initial * 2**n)]``, so many clients that failed together
    (every consumer when the database restarts) do not retry together. ``delay`` is the next
    wait's delay, drawn in advance (for logs)."""

    def __init__(self, settings: Settings, rng: random.Random | None = None) -> None:
        self.initial = settings.retry_initial_seconds
        self.cap = settings.retry_max_seconds
        self.attempt = 0
        self._rng = rng or random.Random()
        self.delay = self._draw()

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        return min(self.cap, self.initial * 2.0 ** min(self.attempt, 32))

    def _draw(self) -> float:
        return self._rng.uniform(0, self.ceiling())

    async def wait(self) -> None:
        await asyncio.sleep(self.delay)
        self.attempt += 1
        self.delay = self._draw()


class RetryScope:
    """A bound on ``retrying`` for the work run inside ``retry_scope``: no back-off sleep goes
    past ``deadline`` (``time.monotonic()``); the transient error propagates instead.
    ``on_retry`` is called with each transient failure (readiness tracks stuck batches)."""

    def __init__(
        self, budget_seconds: float, on_retry: Callable[[BaseException], None] = lambda exc: None
    ) -> None:
        self.deadline = time.monotonic() + budget_seconds
        self.on_retry = on_retry


_scope: ContextVar[RetryScope | None] = ContextVar("retry_scope", default=None)


@contextmanager
def retry_scope(scope: RetryScope) -> Iterator[RetryScope]:
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


async def retrying(
    what: str,
    settings: Settings,
    attempt: Callable[[], Awaitable[T]],
    retry_on: Callable[[BaseException], bool] = is_transient,
) -> T:
    """Run ``attempt`` until it succeeds or fails with an error ``retry_on`` rejects (or, inside
    a ``retry_scope``, until its deadline: then the last error propagates)."""
    backoff = Backoff(settings)
    while True:
        try:
            return await attempt()
        except Exception as exc:
            if not retry_on(exc):
                raise
            scope = _scope.get()
            if scope is not None:
                scope.on_retry(exc)
                if time.monotonic() + backoff.delay > scope.deadline:
                    log.warning("transient_failure_retry_budget_spent", what=what, error=repr(exc))
                    raise
            log.warning("transient_failure_retrying", what=what, error=repr(exc), delay=backoff.delay)
            await backoff.wait()


async def create_pool(
    settings: Settings,
    size: int | None = None,
    warm_types: Sequence[str] = (),
    reset_sessions: bool = True,
) -> asyncpg.Pool:
    """A pool of ``size`` (``db_pool_size``) connections. With ``warm_types`` (a consumer's), every
    connection is opened at once and learns those types' codecs as it opens: asyncpg looks a
    composite type up the first time a statement of each connection uses it (10 to 20 ms of
    catalog queries a type), which otherwise fell in the first batches after a start and
    held their events back (issue 12's steady-load latency).

    ``reset_sessions=False`` is for users that never leave session state behind (settings
    outside a transaction, session advisory locks, LISTEN, cursors): a connection going back
    to the pool is then only rolled back if a transaction is open, without asyncpg's reset
    query (``RESET ALL``, ``UNLISTEN *``, ``CLOSE ALL``, unlocking), a round trip per
    transaction, two per consumer batch."""
    max_size = size or settings.db_pool_size
    # One statement naming every type: asyncpg introspects them (and their attributes' types)
    # in one query; it is prepared, never run.
    probe = "SELECT " + ", ".join(f"NULL::{name}[]" for name in warm_types)

    async def init(conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        if warm_types:
            await conn.prepare(probe)

    async def connect() -> asyncpg.Pool:
        return await asyncpg.create_pool(
            settings.database_url,
            min_size=max_size if warm_types else 1,
            max_size=max_size,
            init=init,
            reset=None if reset_sessions else _keep_session,
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
