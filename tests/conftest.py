"""Session fixtures: one real Kafka broker and one fresh PostgreSQL database for the run.

Each test then gets topics, consumer groups and program names of its own (see
``tests/harness.py``), so tests never see each other's messages or rows."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from services.adapters.migrate import migrate
from tests import infra


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with infra.kafka_bootstrap() as url:
        yield url


@pytest.fixture(scope="session")
def server_database_url() -> Iterator[str]:
    with infra.database_url() as url:
        yield url


@pytest.fixture(scope="session")
async def database_url(server_database_url: str) -> AsyncIterator[str]:
    """A database created for this test run and dropped after it, migrated by the real
    migration command's code."""
    name = f"loyalty_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(server_database_url)
    url = urlunsplit(parts._replace(path=f"/{name}"))
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    yield url
    await asyncio.sleep(0)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()
