"""PostgreSQL reads and writes of a unit of work, set-based: a fixed handful of statements per
batch whatever its size (no round trip per message).

Lock order (docs/concurrency.md): transactions, then customers, then coupons, each sorted by
key. Every consumer and the timer follow it, so concurrent batches wait for each other instead
of deadlocking.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any, TypeVar

import asyncpg

from services.adapters.documents import CURRENT, upgrade
from services.adapters.outbox_frames import pack
from services.adapters.postgres import RetryableConflict, dumps, in_transaction
from services.config.settings import Settings
from services.domain.catalog import Coupon
from services.domain.customer import Customer
from services.domain.transaction import Transaction
from services.service_layer.messages import OutboxMessage, lane_of
from services.service_layer.store import InboxRow
from services.service_layer.tracing import parse_traceparent
from services.service_layer.unit_of_work import CatalogKey, Key, ParkedEvent, UnitOfWork

T = TypeVar("T")

# The composite types the set-based writes pass their rows as (migrations 010 and 011): a
# consumer's pool learns their codecs when it opens (postgres.create_pool).
ROW_TYPES = ("inbox_row", "transaction_row", "customer_row", "outbox_row")


def _columns(keys: Iterable[Key]) -> tuple[list[str], list[str]]:
    ordered = sorted(set(keys))
    return [k[0] for k in ordered], [k[1] for k in ordered]


async def _claim_inbox(conn: asyncpg.Connection, rows: Sequence[InboxRow]) -> set[Key]:
    """Record (program, event_key, action, source) rows; return the keys that were new.

    A key already there (committed, or being committed by a concurrent consumer, which this
    INSERT then waits for) is a duplicate."""
    if not rows:
        return set()
    inserted = await conn.fetch(
        """
        INSERT INTO inbox (program, event_key, action, source)
        SELECT * FROM unnest($1::inbox_row[])
        ON CONFLICT DO NOTHING
        RETURNING program, event_key
        """,
        rows,
    )
    return {(r["program"], r["event_key"]) for r in inserted}


async def _lock_transactions(conn: asyncpg.Connection, uow: UnitOfWork, keys: Sequence[Key]) -> None:
    programs, ids = _columns(keys)
    if not ids:
        return
    for row in await conn.fetch(
        """
        SELECT doc, doc_version FROM transactions
        WHERE (program, transaction_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
        ORDER BY program, transaction_id
        FOR UPDATE
        """,
        programs,
        ids,
    ):
        uow.load_transaction(upgrade("transaction", row["doc_version"], row["doc"]))
    for parked in await read_parked(conn, keys):
        uow.parked.setdefault((parked.program, parked.transaction_id), []).append(parked)


async def _lock_customers(conn: asyncpg.Connection, uow: UnitOfWork, keys: Sequence[Key]) -> None:
    """Missing customers are created empty (in the lock order), then all are locked."""
    programs, ids = _columns(keys)
    if not ids:
        return
    await conn.execute(
        """
        INSERT INTO customers (program, customer_id)
        SELECT * FROM unnest($1::text[], $2::text[]) ORDER BY 1, 2
        ON CONFLICT DO NOTHING
        """,
        programs,
        ids,
    )
    for row in await conn.fetch(
        """
        SELECT program, customer_id, score, spendable, pending, spent, purchase_total,
               purchase_count, purchase_items, purchase_first_date, purchase_last_date
        FROM customers
        WHERE (program, customer_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
        ORDER BY program, customer_id
        FOR UPDATE
        """,
        programs,
        ids,
    ):
        uow.customers[(row["program"], row["customer_id"])] = Customer(**dict(row))


async def _lock_coupons(conn: asyncpg.Connection, uow: UnitOfWork, keys: Sequence[Key]) -> None:
    programs, ids = _columns(keys)
    if not ids:
        return
    for coupon_key in zip(programs, ids, strict=True):
        uow.coupons[coupon_key] = None
    for row in await conn.fetch(
        """
        SELECT program, doc, doc_version FROM coupons
        WHERE (program, code) IN (SELECT * FROM unnest($1::text[], $2::text[]))
        ORDER BY program, code
        FOR UPDATE
        """,
        programs,
        ids,
    ):
        coupon = Coupon.model_validate(upgrade("coupon", row["doc_version"], row["doc"]))
        uow.coupons[(row["program"], coupon.code)] = coupon


async def read_parked(conn: asyncpg.Connection, transactions: Iterable[Key]) -> list[ParkedEvent]:
    """The events parked on these transactions, in arrival order."""
    programs, ids = _columns(transactions)
    if not ids:
        return []
    rows = await conn.fetch(
        """
        SELECT id, program, transaction_id, event_id, action, body, body_version, occurred_at,
               source, reason, traceparent, tracestate
        FROM parked_events
        WHERE (program, transaction_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
        ORDER BY id
        """,
        programs,
        ids,
    )
    return [
        ParkedEvent(
            id=row["id"],
            program=row["program"],
            transaction_id=row["transaction_id"],
            event_id=row["event_id"],
            action=row["action"],
            body=upgrade("parked", row["body_version"], row["body"]),
            occurred_at=row["occurred_at"],
            source=row["source"],
            reason=row["reason"],
            trace=parse_traceparent(row["traceparent"], row["tracestate"]),
        )
        for row in rows
    ]


async def _read_catalog(conn: asyncpg.Connection, uow: UnitOfWork, keys: Iterable[CatalogKey]) -> None:
    """Read catalog entries (no lock: reference data is only read by purchases)."""
    wanted = sorted(set(keys) - uow.catalog.keys())
    if not wanted:
        return
    for catalog_key in wanted:
        uow.catalog[catalog_key] = None
    for row in await conn.fetch(
        """
        SELECT program, kind, id, doc, doc_version FROM catalog
        WHERE (program, kind, id) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))
        """,
        [k[0] for k in wanted],
        [k[1] for k in wanted],
        [k[2] for k in wanted],
    ):
        uow.catalog[(row["program"], row["kind"], row["id"])] = upgrade(
            row["kind"], row["doc_version"], row["doc"]
        )


# A transaction's columns in the order of the transaction_row type (migrations/010_row_types.sql).
TransactionRow = tuple[
    str, str, str | None, str, str, datetime, datetime, datetime | None, datetime | None, str
]


def _transaction_rows(
    txns: Sequence[Transaction], snapshots: Mapping[Key, dict[str, Any]]
) -> list[TransactionRow]:
    return [
        (
            t.program,
            t.transaction_id,
            t.customer,
            t.status.value,
            t.type.value,
            t.created_at,
            t.updated_at,
            t.accepted_at,
            t.auto_accept_at,
            t.document(snapshots.get((t.program, t.transaction_id))),
        )
        for t in txns
    ]


async def _save_transactions(conn: asyncpg.Connection, uow: UnitOfWork) -> None:
    touched = [uow.transactions[k] for k in sorted(uow.touched_transactions)]
    new = [t for t in touched if (t.program, t.transaction_id) not in uow.stored_transactions]
    old = [t for t in touched if (t.program, t.transaction_id) in uow.stored_transactions]
    if new:
        inserted = await conn.fetch(
            """
            INSERT INTO transactions (program, transaction_id, customer_id, status, type, created_at,
                                      updated_at, accepted_at, auto_accept_at, doc, doc_version)
            SELECT program, transaction_id, customer_id, status, type, created_at, updated_at,
                   accepted_at, auto_accept_at, doc::jsonb, $2::int
            FROM unnest($1::transaction_row[])
            ON CONFLICT DO NOTHING
            RETURNING transaction_id
            """,
            _transaction_rows(new, uow.snapshots),
            CURRENT["transaction"],
        )
        if len(inserted) != len(new):
            raise RetryableConflict("a transaction was registered concurrently by another consumer")
    if old:
        await conn.execute(
            """
            UPDATE transactions t SET customer_id = u.customer_id, status = u.status, type = u.type,
                   updated_at = u.updated_at, accepted_at = u.accepted_at,
                   auto_accept_at = u.auto_accept_at, doc = u.doc::jsonb, doc_version = $2::int
            FROM unnest($1::transaction_row[]) AS u
            WHERE t.program = u.program AND t.transaction_id = u.transaction_id
            """,
            _transaction_rows(old, uow.snapshots),
            CURRENT["transaction"],
        )


async def _save_customers(conn: asyncpg.Connection, uow: UnitOfWork) -> None:
    customers = [uow.customers[k] for k in sorted(uow.touched_customers)]
    if not customers:
        return
    await conn.execute(
        """
        UPDATE customers c SET score = u.score, spendable = u.spendable, pending = u.pending,
               spent = u.spent, purchase_total = u.purchase_total, purchase_count = u.purchase_count,
               purchase_items = u.purchase_items, purchase_first_date = u.first_date,
               purchase_last_date = u.last_date, updated_at = now()
        FROM unnest($1::customer_row[]) AS u
        WHERE c.program = u.program AND c.customer_id = u.customer_id
        """,
        [
            (
                c.program,
                c.customer_id,
                c.score,
                c.spendable,
                c.pending,
                c.spent,
                c.purchase_total,
                c.purchase_count,
                c.purchase_items,
                c.purchase_first_date,
                c.purchase_last_date,
            )
            for c in customers
        ],
    )


# Ledger entries and history rows are only ever appended: COPY sends them as rows, for about a
# third of the client CPU of unnest() arrays, whose encoder checks every element against the
# collection ABCs (asyncpg's array shape detection), and less PostgreSQL CPU.
_LEDGER_COLUMNS = (
    "program", "customer_id", "transaction_id", "movement", "points", "score", "spendable",
    "pending", "spent", "event_key", "at",
)  # fmt: skip
_ledger_row = attrgetter(*_LEDGER_COLUMNS)
_HISTORY_COLUMNS = ("program", "transaction_id", "from_status", "to_status", "event_key", "action", "at")
_history_row = attrgetter(*_HISTORY_COLUMNS)


async def _save_ledger(conn: asyncpg.Connection, uow: UnitOfWork) -> None:
    if uow.ledger:
        await conn.copy_records_to_table(
            "points_ledger", columns=_LEDGER_COLUMNS, records=map(_ledger_row, uow.ledger)
        )


async def _save_history(conn: asyncpg.Connection, uow: UnitOfWork) -> None:
    if uow.history:
        await conn.copy_records_to_table(
            "status_history", columns=_HISTORY_COLUMNS, records=map(_history_row, uow.history)
        )


async def _save_parked(conn: asyncpg.Connection, uow: UnitOfWork) -> None:
    if uow.released_parked:
        await conn.execute("DELETE FROM parked_events WHERE id = ANY($1::bigint[])", uow.released_parked)
    parked = uow.new_parked
    if parked:
        await conn.execute(
            """
            INSERT INTO parked_events (program, transaction_id, event_key, event_id, action, body,
                                       body_version, occurred_at, source, reason, traceparent,
                                       tracestate)
            SELECT p, t, k, e, a, b::jsonb, $10::int, o, s, r, tp, ts
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                        $7::timestamptz[], $8::text[], $9::text[], $11::text[], $12::text[])
                 AS u(p, t, k, e, a, b, o, s, r, tp, ts)
            """,
            [e.program for e in parked],
            [e.transaction_id for e in parked],
            [e.event_id for e in parked],  # the inbox key of a decoded event
            [e.event_id for e in parked],
            [e.action for e in parked],
            [dumps(e.body) for e in parked],
            [e.occurred_at for e in parked],
            [e.source for e in parked],
            [e.reason for e in parked],
            CURRENT["parked"],
            [e.trace.traceparent if e.trace else None for e in parked],
            [e.trace.state if e.trace else None for e in parked],
        )


async def _save_catalog(conn: asyncpg.Connection, uow: UnitOfWork) -> None:
    changed = sorted(uow.changed_catalog)
    upserts = [(k, uow.catalog[k]) for k in changed if uow.catalog[k] is not None]
    deletes = [k for k in changed if uow.catalog[k] is None]
    if upserts:
        await conn.execute(
            """
            INSERT INTO catalog (program, kind, id, doc, doc_version, updated_at)
            SELECT p, k, i, d::jsonb, v, now()
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[]) AS u(p, k, i, d, v)
            ON CONFLICT (program, kind, id) DO UPDATE
            SET doc = EXCLUDED.doc, doc_version = EXCLUDED.doc_version, updated_at = EXCLUDED.updated_at
            """,
            [k[0] for k, _ in upserts],
            [k[1] for k, _ in upserts],
            [k[2] for k, _ in upserts],
            [dumps(doc) for _, doc in upserts],
            [CURRENT[k[1]] for k, _ in upserts],
        )
    if deletes:
        await conn.execute(
            "DELETE FROM catalog"
            " WHERE (program, kind, id) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))",
            [k[0] for k in deletes],
            [k[1] for k in deletes],
            [k[2] for k in deletes],
        )


async def _save_coupons(conn: asyncpg.Connection, uow: UnitOfWork) -> None:
    coupons = [(k[0], c) for k in sorted(uow.changed_coupons) if (c := uow.coupons[k]) is not None]
    if not coupons:
        return
    await conn.execute(
        """
        INSERT INTO coupons (program, code, customer_id, status, doc, doc_version, updated_at)
        SELECT p, c, u, s, d::jsonb, $6::int, now()
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS x(p, c, u, s, d)
        ON CONFLICT (program, code) DO UPDATE
        SET customer_id = EXCLUDED.customer_id, status = EXCLUDED.status, doc = EXCLUDED.doc,
            doc_version = EXCLUDED.doc_version, updated_at = EXCLUDED.updated_at
        """,
        [p for p, _ in coupons],
        [c.code for _, c in coupons],
        [c.customer for _, c in coupons],
        [c.status.value for _, c in coupons],
        [c.model_dump_json() for _, c in coupons],
        CURRENT["coupon"],
    )


async def _refresh_purchase_dates(conn: asyncpg.Connection, uow: UnitOfWork) -> None:
    """First and last purchase dates from the purchases that still count (after the
    transactions of this unit of work are saved). A transaction's ``created_at`` is its
    purchase's ``occurred_at`` (``register_checkout``), and the customer's index on
    ``created_at`` gives each date by walking from its end to the first purchase that still
    counts: usually the first row, whatever the length of the history. Reading every purchase's
    date out of its document cost a refund 48 µs of PostgreSQL at ten purchases, and grew with
    them."""
    programs, ids = _columns(uow.stale_purchase_dates)
    if not ids:
        return
    await conn.execute(
        """
        UPDATE customers c SET
            purchase_first_date = (
                SELECT t.created_at FROM transactions t
                WHERE t.program = c.program AND t.customer_id = c.customer_id
                  AND t.status IN ('accepted', 'partially_refunded')
                ORDER BY t.created_at LIMIT 1),
            purchase_last_date = (
                SELECT t.created_at FROM transactions t
                WHERE t.program = c.program AND t.customer_id = c.customer_id
                  AND t.status IN ('accepted', 'partially_refunded')
                ORDER BY t.created_at DESC LIMIT 1)
        FROM unnest($1::text[], $2::text[]) AS k(program, customer_id)
        WHERE c.program = k.program AND c.customer_id = k.customer_id
        """,
        programs,
        ids,
    )


async def _save(conn: asyncpg.Connection, uow: UnitOfWork, lanes: int) -> None:
    await _save_customers(conn, uow)
    await _save_transactions(conn, uow)
    await _refresh_purchase_dates(conn, uow)
    await _save_ledger(conn, uow)
    await _save_history(conn, uow)
    await _save_parked(conn, uow)
    await _save_catalog(conn, uow)
    await _save_coupons(conn, uow)
    await write_outbox(conn, uow.outbox, lanes)


async def write_outbox(conn: asyncpg.Connection, messages: Sequence[OutboxMessage], lanes: int) -> None:
    """One set-based INSERT of one row per lane, each holding its lane's messages in the order
    of ``messages``, packed (docs/outbox.md): the rows written, read back by the relay and
    deleted are a few dozen per batch instead of one per message."""
    if not messages:
        return
    by_lane: dict[int, list[OutboxMessage]] = {}
    for m in messages:
        by_lane.setdefault(lane_of(m, lanes), []).append(m)
    await conn.execute(
        "INSERT INTO outbox (lane, topics, frames) SELECT * FROM unnest($1::outbox_row[])",
        [(lane, [m.topic for m in packed], pack(packed)) for lane, packed in by_lane.items()],
    )


class PostgresStore:
    """The pipeline's port (``services.service_layer.store.Store``) on one open transaction."""

    def __init__(self, conn: asyncpg.Connection, lanes: int) -> None:
        self.conn = conn
        self.lanes = lanes

    async def claim_inbox(self, rows: Sequence[InboxRow]) -> set[Key]:
        return await _claim_inbox(self.conn, rows)

    async def lock_transactions(self, uow: UnitOfWork, keys: Sequence[Key]) -> None:
        await _lock_transactions(self.conn, uow, keys)

    async def lock_customers(self, uow: UnitOfWork, keys: Sequence[Key]) -> None:
        await _lock_customers(self.conn, uow, keys)

    async def lock_coupons(self, uow: UnitOfWork, keys: Sequence[Key]) -> None:
        await _lock_coupons(self.conn, uow, keys)

    async def read_catalog(self, uow: UnitOfWork, keys: Sequence[CatalogKey]) -> None:
        await _read_catalog(self.conn, uow, keys)

    async def save(self, uow: UnitOfWork) -> None:
        await _save(self.conn, uow, self.lanes)


class PostgresStorage:
    """Transactions on the pool, retried whole on transient failures (docs/retries.md)."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings

    async def transaction(self, what: str, work: Callable[[PostgresStore], Awaitable[T]]) -> T:
        return await in_transaction(
            self.pool, self.settings, what, lambda conn: work(PostgresStore(conn, self.settings.relay_lanes))
        )
