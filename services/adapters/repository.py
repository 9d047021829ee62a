"""PostgreSQL reads and writes of a unit of work, set-based: a fixed handful of statements per
batch whatever its size (no round trip per message).

Lock order (docs/concurrency.md): transactions, then customers, then coupons, each sorted by
key. Every consumer and the timer follow it, so concurrent batches wait for each other instead
of deadlocking.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import asyncpg

from services.adapters.postgres import RetryableConflict, dumps
from services.domain.catalog import Coupon
from services.domain.customer import Customer
from services.domain.transaction import Transaction
from services.service_layer.messages import OutboxMessage, lane_of
from services.service_layer.unit_of_work import CatalogKey, Key, Needs, ParkedEvent, UnitOfWork


def _columns(keys: Iterable[Key]) -> tuple[list[str], list[str]]:
    ordered = sorted(set(keys))
    return [k[0] for k in ordered], [k[1] for k in ordered]


async def claim_inbox(conn: asyncpg.Connection, rows: Sequence[tuple[str, str, str | None, str]]) -> set[Key]:
    """Record (program, event_key, action, source) rows; return the keys that were new.

    A key already there (committed, or being committed by a concurrent consumer, which this
    INSERT then waits for) is a duplicate."""
    if not rows:
        return set()
    inserted = await conn.fetch(
        """
        INSERT INTO inbox (program, event_key, action, source)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
        ON CONFLICT DO NOTHING
        RETURNING program, event_key
        """,
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
    )
    return {(r["program"], r["event_key"]) for r in inserted}


async def load(
    conn: asyncpg.Connection, uow: UnitOfWork, needs: Needs, parked_needs: Callable[[ParkedEvent], Needs]
) -> None:
    """Lock transactions, then customers, then coupons (each sorted); read catalog entries.

    A locked transaction brings in what a change to it may touch: its owner (an event about a
    claimed guest checkout need not name the claimer) and the rows its parked events need (a
    claimer waiting for the guest checkout), so a release is never left for a later change."""
    programs, ids = _columns(needs.transactions)
    if ids:
        for row in await conn.fetch(
            """
            SELECT doc FROM transactions
            WHERE (program, transaction_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
            ORDER BY program, transaction_id
            FOR UPDATE
            """,
            programs,
            ids,
        ):
            txn = Transaction.model_validate(row["doc"])
            key = (txn.program, txn.transaction_id)
            uow.transactions[key] = txn
            uow.stored_transactions.add(key)
        for parked in await read_parked(conn, needs.transactions):
            uow.parked.setdefault((parked.program, parked.transaction_id), []).append(parked)
    rows = Needs(customers=list(needs.customers), coupons=list(needs.coupons), catalog=list(needs.catalog))
    rows.customers += [(t.program, t.customer) for t in uow.transactions.values() if t.customer]
    for waiting in uow.parked.values():
        for parked in waiting:
            rows.add(parked_needs(parked))
    await _lock_customers(conn, uow, rows.customers)
    # A transaction's coupons are locked with it: refunds and coupon_unredeem give them back.
    txn_coupons = [(t.program, code) for t in uow.transactions.values() for code in t.coupons]
    await _lock_coupons(conn, uow, [*rows.coupons, *txn_coupons])
    await read_catalog(conn, uow, rows.catalog)


async def _lock_customers(conn: asyncpg.Connection, uow: UnitOfWork, keys: list[Key]) -> None:
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


async def _lock_coupons(conn: asyncpg.Connection, uow: UnitOfWork, keys: list[Key]) -> None:
    programs, ids = _columns(keys)
    if not ids:
        return
    for coupon_key in zip(programs, ids, strict=True):
        uow.coupons[coupon_key] = None
    for row in await conn.fetch(
        """
        SELECT program, doc FROM coupons
        WHERE (program, code) IN (SELECT * FROM unnest($1::text[], $2::text[]))
        ORDER BY program, code
        FOR UPDATE
        """,
        programs,
        ids,
    ):
        coupon = Coupon.model_validate(row["doc"])
        uow.coupons[(row["program"], coupon.code)] = coupon


async def read_parked(conn: asyncpg.Connection, transactions: Iterable[Key]) -> list[ParkedEvent]:
    """The events parked on these transactions, in arrival order."""
    programs, ids = _columns(transactions)
    if not ids:
        return []
    rows = await conn.fetch(
        """
        SELECT id, program, transaction_id, event_key, event_id, action, body, occurred_at, source, reason
        FROM parked_events
        WHERE (program, transaction_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
        ORDER BY id
        """,
        programs,
        ids,
    )
    return [ParkedEvent(**dict(row)) for row in rows]


# Products stored before catalog entries took the order lines' vocabulary said name and url.
_OLD_PRODUCT_FIELDS = {"name": "product_name", "url": "product_url"}


def _upgrade_catalog_doc(kind: str, doc: dict[str, Any]) -> dict[str, Any]:
    if kind != "product" or not _OLD_PRODUCT_FIELDS.keys() & doc.keys():
        return doc
    return {_OLD_PRODUCT_FIELDS.get(k, k): v for k, v in doc.items()}


async def read_catalog(conn: asyncpg.Connection, uow: UnitOfWork, keys: Iterable[CatalogKey]) -> None:
    """Read catalog entries (no lock: reference data is only read by purchases)."""
    wanted = sorted(set(keys) - uow.catalog.keys())
    if not wanted:
        return
    for catalog_key in wanted:
        uow.catalog[catalog_key] = None
    for row in await conn.fetch(
        """
        SELECT program, kind, id, doc FROM catalog
        WHERE (program, kind, id) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))
        """,
        [k[0] for k in wanted],
        [k[1] for k in wanted],
        [k[2] for k in wanted],
    ):
        uow.catalog[(row["program"], row["kind"], row["id"])] = _upgrade_catalog_doc(row["kind"], row["doc"])


def _transaction_columns(txns: Sequence[Transaction]) -> list[list[object]]:
    return [
        [t.program for t in txns],
        [t.transaction_id for t in txns],
        [t.customer for t in txns],
        [t.status.value for t in txns],
        [t.type.value for t in txns],
        [t.created_at for t in txns],
        [t.updated_at for t in txns],
        [t.accepted_at for t in txns],
        [t.auto_accept_at for t in txns],
        [t.document() for t in txns],
    ]


_TXN_UNNEST = """unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                        $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::text[])
                 AS u(program, transaction_id, customer_id, status, type, created_at, updated_at,
                      accepted_at, auto_accept_at, doc)"""


async def _save_transactions(conn: asyncpg.Connection, uow: UnitOfWork) -> None:
    touched = [uow.transactions[k] for k in sorted(uow.touched_transactions)]
    new = [t for t in touched if (t.program, t.transaction_id) not in uow.stored_transactions]
    old = [t for t in touched if (t.program, t.transaction_id) in uow.stored_transactions]
    if new:
        inserted = await conn.fetch(
            f"""
            INSERT INTO transactions (program, transaction_id, customer_id, status, type, created_at,
                                      updated_at, accepted_at, auto_accept_at, doc)
            SELECT program, transaction_id, customer_id, status, type, created_at, updated_at,
                   accepted_at, auto_accept_at, doc::jsonb
            FROM {_TXN_UNNEST}
            ON CONFLICT DO NOTHING
            RETURNING transaction_id
            """,
            *_transaction_columns(new),
        )
        if len(inserted) != len(new):
            raise RetryableConflict("a transaction was registered concurrently by another consumer")
    if old:
        await conn.execute(
            f"""
            UPDATE transactions t SET customer_id = u.customer_id, status = u.status, type = u.type,
                   updated_at = u.updated_at, accepted_at = u.accepted_at,
                   auto_accept_at = u.auto_accept_at, doc = u.doc::jsonb
            FROM {_TXN_UNNEST}
            WHERE t.program = u.program AND t.transaction_id = u.transaction_id
            """,
            *_transaction_columns(old),
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
        FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
                    $7::numeric[], $8::int[], $9::numeric[], $10::timestamptz[], $11::timestamptz[])
             AS u(program, customer_id, score, spendable, pending, spent, purchase_total,
                  purchase_count, purchase_items, first_date, last_date)
        WHERE c.program = u.program AND c.customer_id = u.customer_id
        """,
        [c.program for c in customers],
        [c.customer_id for c in customers],
        [c.score for c in customers],
        [c.spendable for c in customers],
        [c.pending for c in customers],
        [c.spent for c in customers],
        [c.purchase_total for c in customers],
        [c.purchase_count for c in customers],
        [c.purchase_items for c in customers],
        [c.purchase_first_date for c in customers],
        [c.purchase_last_date for c in customers],
    )


async def _save_ledger(conn: asyncpg.Connection, uow: UnitOfWork) -> None:
    entries = uow.ledger
    if not entries:
        return
    await conn.execute(
        """
        INSERT INTO points_ledger (program, customer_id, transaction_id, movement, points, score,
                                   spendable, pending, spent, event_key, at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[],
                             $7::bigint[], $8::bigint[], $9::bigint[], $10::text[], $11::timestamptz[])
        """,
        [e.program for e in entries],
        [e.customer_id for e in entries],
        [e.transaction_id for e in entries],
        [e.movement.value for e in entries],
        [e.points for e in entries],
        [e.score for e in entries],
        [e.spendable for e in entries],
        [e.pending for e in entries],
        [e.spent for e in entries],
        [e.event_key for e in entries],
        [e.at for e in entries],
    )


async def _save_history(conn: asyncpg.Connection, uow: UnitOfWork) -> None:
    rows = uow.history
    if not rows:
        return
    await conn.execute(
        """
        INSERT INTO status_history (program, transaction_id, from_status, to_status, event_key, action, at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                             $7::timestamptz[])
        """,
        [r.program for r in rows],
        [r.transaction_id for r in rows],
        [r.from_status for r in rows],
        [r.to_status for r in rows],
        [r.event_key for r in rows],
        [r.action for r in rows],
        [r.at for r in rows],
    )


async def _save_parked(conn: asyncpg.Connection, uow: UnitOfWork) -> None:
    if uow.released_parked:
        await conn.execute("DELETE FROM parked_events WHERE id = ANY($1::bigint[])", uow.released_parked)
    parked = uow.new_parked
    if parked:
        await conn.execute(
            """
            INSERT INTO parked_events (program, transaction_id, event_key, event_id, action, body,
                                       occurred_at, source, reason)
            SELECT p, t, k, e, a, b::jsonb, o, s, r
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                        $7::timestamptz[], $8::text[], $9::text[]) AS u(p, t, k, e, a, b, o, s, r)
            """,
            [e.program for e in parked],
            [e.transaction_id for e in parked],
            [e.event_key for e in parked],
            [e.event_id for e in parked],
            [e.action for e in parked],
            [dumps(e.body) for e in parked],
            [e.occurred_at for e in parked],
            [e.source for e in parked],
            [e.reason for e in parked],
        )


async def _save_catalog(conn: asyncpg.Connection, uow: UnitOfWork) -> None:
    changed = sorted(uow.changed_catalog)
    upserts = [(k, uow.catalog[k]) for k in changed if uow.catalog[k] is not None]
    deletes = [k for k in changed if uow.catalog[k] is None]
    if upserts:
        await conn.execute(
            """
            INSERT INTO catalog (program, kind, id, doc, updated_at)
            SELECT p, k, i, d::jsonb, now()
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(p, k, i, d)
            ON CONFLICT (program, kind, id) DO UPDATE
            SET doc = EXCLUDED.doc, updated_at = EXCLUDED.updated_at
            """,
            [k[0] for k, _ in upserts],
            [k[1] for k, _ in upserts],
            [k[2] for k, _ in upserts],
            [dumps(doc) for _, doc in upserts],
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
        INSERT INTO coupons (program, code, customer_id, status, doc, updated_at)
        SELECT p, c, u, s, d::jsonb, now()
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS x(p, c, u, s, d)
        ON CONFLICT (program, code) DO UPDATE
        SET customer_id = EXCLUDED.customer_id, status = EXCLUDED.status, doc = EXCLUDED.doc,
            updated_at = EXCLUDED.updated_at
        """,
        [p for p, _ in coupons],
        [c.code for _, c in coupons],
        [c.customer for _, c in coupons],
        [c.status.value for _, c in coupons],
        [c.model_dump_json() for _, c in coupons],
    )


async def _refresh_purchase_dates(conn: asyncpg.Connection, uow: UnitOfWork) -> None:
    """First and last purchase dates from the purchases that still count (after the
    transactions of this unit of work are saved)."""
    programs, ids = _columns(uow.stale_purchase_dates)
    if not ids:
        return
    await conn.execute(
        """
        UPDATE customers c SET purchase_first_date = p.first_date, purchase_last_date = p.last_date
        FROM (
            SELECT k.program, k.customer_id,
                   min((t.doc->>'occurred_at')::timestamptz) AS first_date,
                   max((t.doc->>'occurred_at')::timestamptz) AS last_date
            FROM unnest($1::text[], $2::text[]) AS k(program, customer_id)
            LEFT JOIN transactions t ON t.program = k.program AND t.customer_id = k.customer_id
                                    AND t.status IN ('accepted', 'partially_refunded')
            GROUP BY k.program, k.customer_id
        ) p
        WHERE c.program = p.program AND c.customer_id = p.customer_id
        """,
        programs,
        ids,
    )


async def save(conn: asyncpg.Connection, uow: UnitOfWork, lanes: int) -> None:
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
    """One set-based INSERT; ids follow the order of ``messages``."""
    if not messages:
        return
    await conn.execute(
        """
        INSERT INTO outbox (lane, topic, key, value, headers)
        SELECT lane, topic, key, value, headers::jsonb
        FROM unnest($1::int[], $2::text[], $3::bytea[], $4::bytea[], $5::text[])
             WITH ORDINALITY AS m(lane, topic, key, value, headers, n)
        ORDER BY n
        """,
        [lane_of(m, lanes) for m in messages],
        [m.topic for m in messages],
        [m.key for m in messages],
        [m.value for m in messages],
        [dumps([list(h) for h in m.headers]) for m in messages],
    )
