"""A consumer's pool (services/adapters/postgres.py ``create_pool``) on the real database: every
connection is open when the pool is, and none looks a row type up during a batch, which cost
the first batches after a start 10 to 20 ms a type and connection."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
import pytest

from services.adapters.postgres import create_pool
from services.adapters.repository import ROW_TYPES
from services.config.settings import Settings

pytestmark = pytest.mark.integration

# A statement of each kind the set-based writes run: every row type, as an array parameter.
ROW_TYPED = "SELECT " + ", ".join(f"cardinality(${n + 1}::{name}[])" for n, name in enumerate(ROW_TYPES))


async def queries_of_first_use(pool: asyncpg.Pool) -> list[list[str]]:
    """For each connection of ``pool`` (all held at once, so each is a different one), the
    queries it sends to run a row-typed statement for the first time."""
    held = [await pool.acquire() for _ in range(pool.get_max_size())]
    sent: list[list[str]] = []
    try:
        for conn in held:
            queries: list[str] = []
            conn.add_query_logger(lambda record, queries=queries: queries.append(record.query))
            await conn.fetchval(ROW_TYPED, *([[]] * len(ROW_TYPES)))
            await asyncio.sleep(0)  # asyncpg calls query loggers soon after, not at once
            sent.append(list(queries))  # not the pool's reset on release
    finally:
        for conn in held:
            await pool.release(conn)
    return sent


def introspections(sent: Sequence[str]) -> list[str]:
    return [q for q in sent if "typeinfo" in q]


async def test_a_warm_pool_opens_every_connection_knowing_the_row_types(database_url: str) -> None:
    settings = Settings(database_url=database_url, db_pool_size=3)
    pool = await create_pool(settings, warm_types=ROW_TYPES)
    try:
        assert pool.get_size() == 3 and pool.get_idle_size() == 3
        sent = await queries_of_first_use(pool)
        assert sent == [[ROW_TYPED]] * 3
    finally:
        await pool.close()


async def test_a_plain_pool_looks_the_row_types_up_on_first_use(database_url: str) -> None:
    """The check above can fail: without warm types, each connection introspects on first use."""
    settings = Settings(database_url=database_url, db_pool_size=2)
    pool = await create_pool(settings)
    try:
        assert pool.get_size() == 1
        sent = await queries_of_first_use(pool)
        assert all(introspections(queries) for queries in sent)
    finally:
        await pool.close()


async def test_a_warm_pool_refuses_a_database_without_its_types(database_url: str) -> None:
    """A database not migrated to this version fails the start with PostgreSQL's own error,
    naming the type, rather than every batch after it."""
    settings = Settings(database_url=database_url, db_pool_size=1)
    with pytest.raises(asyncpg.UndefinedObjectError, match="no_such_row"):
        await create_pool(settings, warm_types=("no_such_row",))


@pytest.mark.parametrize("reset_sessions", [True, False])
async def test_a_consumer_pool_skips_the_reset_query_but_ends_open_transactions(
    database_url: str, reset_sessions: bool
) -> None:
    settings = Settings(database_url=database_url, db_pool_size=1)
    pool = await create_pool(settings, reset_sessions=reset_sessions)
    try:
        conn = await pool.acquire()
        queries: list[str] = []
        conn.add_query_logger(lambda record: queries.append(record.query))
        await conn.execute("BEGIN")  # left open, as a failed unit of work might
        await conn.execute("SET LOCAL enable_seqscan = off")
        await pool.release(conn)
        await asyncio.sleep(0)
        assert ("RESET ALL" in queries[-1]) is reset_sessions
        async with pool.acquire() as again:
            assert not again.is_in_transaction()
            assert await again.fetchval("SHOW enable_seqscan") == "on"
    finally:
        await pool.close()
