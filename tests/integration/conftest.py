from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from services.domain.program import Program
from services.service_layer.actions import checkout_ingestion
from tests.harness import Engine, make_program

pytestmark = pytest.mark.integration


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def program_factory() -> Callable[..., Program]:
    def factory(name: str = "p", **fields: Any) -> Program:
        return make_program(unique(name), **fields)

    return factory


@pytest.fixture
def checkout_engine(kafka_bootstrap: str, database_url: str) -> Callable[..., Engine]:
    def factory(*programs: Program, **settings: Any) -> Engine:
        return Engine(kafka_bootstrap, database_url, [checkout_ingestion()], list(programs), **settings)

    return factory


CUSTOMER_STATE = (
    "score",
    "spendable",
    "pending",
    "spent",
    "purchase_total",
    "purchase_count",
    "purchase_items",
    "purchase_first_date",
    "purchase_last_date",
)


class Db:
    """Read-side helpers over the real database, scoped by program."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def customer(self, program: str, customer_id: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            "SELECT * FROM customers WHERE program = $1 AND customer_id = $2", program, customer_id
        )

    async def balances(self, program: str, customer_id: str) -> dict[str, Any]:
        """A customer's balances and purchase attributes, for comparing states."""
        row = await self.customer(program, customer_id)
        assert row is not None
        return {k: row[k] for k in CUSTOMER_STATE}

    async def transaction(self, program: str, transaction_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            "SELECT doc FROM transactions WHERE program = $1 AND transaction_id = $2", program, transaction_id
        )
        return None if row is None else dict(json.loads(row["doc"]))

    async def count(self, table: str, program: str) -> int:
        return int(await self.pool.fetchval(f"SELECT count(*) FROM {table} WHERE program = $1", program))

    async def ledger_mismatches(self, program: str) -> list[asyncpg.Record]:
        """Customers whose balances differ from the sums of their ledger deltas."""
        return await self.pool.fetch(
            """
            SELECT c.customer_id FROM customers c
            LEFT JOIN (SELECT customer_id, sum(score) s, sum(spendable) sp, sum(pending) p, sum(spent) st
                       FROM points_ledger WHERE program = $1 GROUP BY customer_id) l USING (customer_id)
            WHERE c.program = $1 AND (c.score, c.spendable, c.pending, c.spent)
                  IS DISTINCT FROM (coalesce(l.s, 0), coalesce(l.sp, 0), coalesce(l.p, 0), coalesce(l.st, 0))
            """,
            program,
        )


@pytest.fixture
async def dbq(db: asyncpg.Pool) -> AsyncIterator[Db]:
    yield Db(db)
