"""The historical import's bulk writer: one database transaction per chunk of records, a fixed
handful of statements whatever its size.

In a chunk's transaction: claim the records' inbox keys (``import:<transaction id>``: a key
already there is a duplicate, so a second import, or the rerun of a killed one, skips what was
committed); look up which transactions exist already; create and lock the customers (sorted,
the consumers' lock order) and read the catalog products the earn rules need; apply the
records in memory (:class:`services.service_layer.importing.ImportCore`); then write: the
customers by one ``UPDATE ... FROM unnest``, the transactions by ``COPY`` into a staging table
and one ``INSERT ... SELECT``, the points ledger and the status history by ``COPY``, purchase
dates refreshed set-based where a purchase was refunded, and the outbox rows (``--emit-events``).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.adapters.documents import CURRENT
from services.adapters.postgres import RetryableConflict
from services.adapters.repository import (
    _claim_inbox,
    _lock_customers,
    _read_catalog,
    _refresh_purchase_dates,
    _save_customers,
    _transaction_rows,
    write_outbox,
)
from services.service_layer.importing import ACTION, ImportCore, Outcome, Parsed, catalog_needs
from services.service_layer.unit_of_work import Key, UnitOfWork

_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS import_transactions_staging (
    program text, transaction_id text, customer_id text, status text, type text,
    created_at timestamptz, updated_at timestamptz, accepted_at timestamptz,
    auto_accept_at timestamptz, doc text
) ON COMMIT DELETE ROWS
"""

_LEDGER_COLUMNS = [
    "program",
    "customer_id",
    "transaction_id",
    "movement",
    "points",
    "score",
    "spendable",
    "pending",
    "spent",
    "event_key",
    "at",
]
_HISTORY_COLUMNS = ["program", "transaction_id", "from_status", "to_status", "event_key", "action", "at"]
_STAGING_COLUMNS = [
    "program",
    "transaction_id",
    "customer_id",
    "status",
    "type",
    "created_at",
    "updated_at",
    "accepted_at",
    "auto_accept_at",
    "doc",
]


async def _existing(conn: asyncpg.Connection, keys: Sequence[Key]) -> dict[Key, bool]:
    """Stored transactions among ``keys``: True when an import registered it."""
    if not keys:
        return {}
    rows = await conn.fetch(
        """
        SELECT t.program, t.transaction_id,
               EXISTS (SELECT 1 FROM status_history h
                       WHERE h.program = t.program AND h.transaction_id = t.transaction_id
                         AND h.event_key = 'import:' || t.transaction_id) AS imported
        FROM transactions t
        WHERE (t.program, t.transaction_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
        """,
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r["program"], r["transaction_id"]): r["imported"] for r in rows}


async def _save(conn: asyncpg.Connection, uow: UnitOfWork, lanes: int) -> None:
    await _save_customers(conn, uow)
    txns = [uow.transactions[k] for k in sorted(uow.touched_transactions)]
    if txns:
        await conn.execute(_STAGING)
        await conn.copy_records_to_table(
            "import_transactions_staging",
            columns=_STAGING_COLUMNS,
            records=_transaction_rows(txns, uow.snapshots),
        )
        status = await conn.execute(
            """
            INSERT INTO transactions (program, transaction_id, customer_id, status, type, created_at,
                                      updated_at, accepted_at, auto_accept_at, doc, doc_version)
            SELECT program, transaction_id, customer_id, status, type, created_at, updated_at,
                   accepted_at, auto_accept_at, doc::jsonb, $1::int
            FROM import_transactions_staging
            ON CONFLICT DO NOTHING
            """,
            CURRENT["transaction"],
        )
        if int(status.rsplit(" ", 1)[1]) != len(txns):
            raise RetryableConflict("a transaction was registered concurrently by a consumer")
    await _refresh_purchase_dates(conn, uow)
    if uow.ledger:
        await conn.copy_records_to_table(
            "points_ledger",
            columns=_LEDGER_COLUMNS,
            records=[
                (
                    e.program,
                    e.customer_id,
                    e.transaction_id,
                    e.movement.value,
                    e.points,
                    e.score,
                    e.spendable,
                    e.pending,
                    e.spent,
                    e.event_key,
                    e.at,
                )
                for e in uow.ledger
            ],
        )
    if uow.history:
        await conn.copy_records_to_table(
            "status_history",
            columns=_HISTORY_COLUMNS,
            records=[
                (r.program, r.transaction_id, r.from_status, r.to_status, r.event_key, r.action, r.at)
                for r in uow.history
            ],
        )
    await write_outbox(conn, uow.outbox, lanes)


async def import_chunk(
    conn: asyncpg.Connection, core: ImportCore, items: Sequence[Parsed], source: str, lanes: int
) -> list[Outcome]:
    """Apply one chunk in the caller's open transaction; each item's outcome, in order."""
    new_keys = await _claim_inbox(conn, [(*item.key, ACTION, source) for item in items])
    fresh = [item.key in new_keys for item in items]
    candidates = [item for item, is_new in zip(items, fresh, strict=True) if is_new]
    existing = await _existing(conn, [item.transaction for item in candidates])
    uow = UnitOfWork()
    await _lock_customers(
        conn,
        uow,
        [(item.program, item.record.customer) for item in candidates if item.transaction not in existing],
    )
    await _read_catalog(conn, uow, catalog_needs(candidates))
    outcomes = core.apply(uow, items, fresh, existing)
    await _save(conn, uow, lanes)
    return outcomes
