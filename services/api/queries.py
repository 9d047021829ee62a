"""PostgreSQL reads of the read API: plain SQL over the tables the consumers write, scoped by
program in every statement. No locks, no writes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from services.contract.api import TransactionFilters
from services.domain.customer import Customer

# Column and direction come from validated literals, never from raw input.
_ORDER_COLUMNS = {"created_at": "created_at", "accepted_at": "accepted_at"}
_DIRECTIONS = {"asc": "ASC", "desc": "DESC"}


async def transaction_docs(
    conn: asyncpg.Connection, program: str, customer_id: str, filters: TransactionFilters, limit: int
) -> list[bytes]:
    """Stored documents of a customer's registered transactions, filtered and ordered, as JSON
    text (the page is spliced from them without parsing)."""
    where = ["program = $1", "customer_id = $2", "status <> 'draft'"]
    args: list[Any] = [program, customer_id]

    def bind(clause: str, value: Any) -> None:
        args.append(value)
        where.append(clause.format(f"${len(args)}"))

    if filters.status:
        bind("status = ANY({}::text[])", list(filters.status))
    if filters.type:
        bind("type = ANY({}::text[])", [t.value for t in filters.type])
    if filters.supported is not None:
        # FlipGive's "supported": became financial. Here that is acceptance, which a refund
        # never undoes (refunds need an accepted transaction), so accepted_at says it.
        where.append("accepted_at IS NOT NULL" if filters.supported else "accepted_at IS NULL")
    for column, op, value in (
        ("created_at", ">", filters.created_at_gt),
        ("created_at", "<", filters.created_at_lt),
        ("accepted_at", ">", filters.accepted_at_gt),
        ("accepted_at", "<", filters.accepted_at_lt),
    ):
        if value is not None:
            bind(f"{column} {op} {{}}", value)
    column, direction = _ORDER_COLUMNS[filters.order_by], _DIRECTIONS[filters.order]
    args += [limit, filters.offset]
    rows = await conn.fetch(
        f"""
        SELECT doc::text AS doc FROM transactions
        WHERE {" AND ".join(where)}
        ORDER BY {column} {direction} NULLS LAST, transaction_id {direction}
        LIMIT ${len(args) - 1} OFFSET ${len(args)}
        """,
        *args,
    )
    return [row["doc"].encode() for row in rows]


async def customer(conn: asyncpg.Connection, program: str, customer_id: str) -> Customer | None:
    row = await conn.fetchrow(
        """
        SELECT program, customer_id, score, spendable, pending, spent, purchase_total,
               purchase_count, purchase_items, purchase_first_date, purchase_last_date
        FROM customers WHERE program = $1 AND customer_id = $2
        """,
        program,
        customer_id,
    )
    return None if row is None else Customer(**dict(row))


async def customer_exists(conn: asyncpg.Connection, program: str, customer_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM customers WHERE program = $1 AND customer_id = $2)",
            program,
            customer_id,
        )
    )


async def transaction_doc(conn: asyncpg.Connection, program: str, transaction_id: str) -> str | None:
    doc: str | None = await conn.fetchval(
        """
        SELECT doc::text FROM transactions
        WHERE program = $1 AND transaction_id = $2 AND status <> 'draft'
        """,
        program,
        transaction_id,
    )
    return doc


async def status_history(conn: asyncpg.Connection, program: str, transaction_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT from_status, to_status, action, event_key, at FROM status_history
        WHERE program = $1 AND transaction_id = $2 ORDER BY id
        """,
        program,
        transaction_id,
    )
    return [dict(row) for row in rows]


async def ledger_entries(conn: asyncpg.Connection, program: str, transaction_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT customer_id, movement, points, score, spendable, pending, spent, event_key, at
        FROM points_ledger WHERE program = $1 AND transaction_id = $2 ORDER BY id
        """,
        program,
        transaction_id,
    )
    return [dict(row) for row in rows]


async def product_docs(
    conn: asyncpg.Connection, program: str, product_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, doc FROM catalog WHERE program = $1 AND kind = 'product' AND id = ANY($2::text[])",
        program,
        list(product_ids),
    )
    return {row["id"]: row["doc"] for row in rows}


async def coupon_docs(
    conn: asyncpg.Connection, program: str, customer_id: str, statuses: Sequence[str]
) -> list[dict[str, Any]]:
    """A customer's coupon documents in these statuses (``services.domain.catalog.Coupon``)."""
    rows = await conn.fetch(
        """
        SELECT doc FROM coupons
        WHERE program = $1 AND customer_id = $2 AND status = ANY($3::text[])
        """,
        program,
        customer_id,
        list(statuses),
    )
    return [row["doc"] for row in rows]
