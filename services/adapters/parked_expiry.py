"""Expiry of parked events (services/service_layer/docs/parking.md): an event parked longer
than an operator (or a timer) accepts gets its final ``rejected`` result, code
``parked_expired``, and its parked row is deleted. No webhook: nothing changed.

Lock order (docs/concurrency.md): the parked events' transactions are locked first, as every
consumer does before it reads or releases their parked events; a transaction locked by a
running batch is skipped (``SKIP LOCKED``), its events are expired by the next run. So an
event is either released by a consumer or expired here, never both."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.adapters.repository import write_outbox
from services.config.settings import Settings
from services.service_layer.messages import OutboxBuilder

PARKED_EXPIRED = "parked_expired"


@dataclass(frozen=True)
class ExpiredParked:
    id: int
    program: str
    transaction_id: str
    event_id: str
    action: str
    reason: str
    source: str
    parked_at: datetime


def parked_filters(
    programs: Sequence[str] | None, reasons: Sequence[str] | None, older_than_seconds: float | None
) -> tuple[str, list[object]]:
    """The WHERE clause over ``parked_events`` (no alias) and its arguments from $1."""
    clauses: list[str] = ["TRUE"]
    args: list[object] = []
    if programs:
        args.append(list(programs))
        clauses.append(f"program = ANY(${len(args)}::text[])")
    if reasons:
        args.append(list(reasons))
        clauses.append(f"reason = ANY(${len(args)}::text[])")
    if older_than_seconds is not None:
        args.append(float(older_than_seconds))
        clauses.append(f"parked_at < now() - make_interval(secs => ${len(args)})")
    return " AND ".join(clauses), args


async def expire_parked(
    conn: asyncpg.Connection,
    settings: Settings,
    *,
    programs: Sequence[str] | None = None,
    reasons: Sequence[str] | None = None,
    older_than_seconds: float | None = None,
    limit: int = 10_000,
    dry_run: bool = False,
    message: str | None = None,
) -> list[ExpiredParked]:
    """Expire the parked events matching the filters (at most ``limit``), in one database
    transaction: delete their rows and write each one's final ``rejected`` result
    (``parked_expired``) to the outbox. ``dry_run`` returns what would be expired and changes
    nothing. The caller's relay (any running consumer's) publishes the results."""
    where, args = parked_filters(programs, reasons, older_than_seconds)
    async with conn.transaction():
        n = len(args)
        locked = await conn.fetch(
            f"""
            SELECT program, transaction_id FROM transactions
            WHERE (program, transaction_id) IN (
                SELECT program, transaction_id FROM parked_events WHERE {where}
                ORDER BY id LIMIT ${n + 1})
            ORDER BY program, transaction_id
            FOR UPDATE SKIP LOCKED
            """,
            *args,
            limit,
        )
        if not locked:
            return []
        # A second statement, so its snapshot sees what a batch committed before the locks.
        # DELETE cannot ORDER or LIMIT: the ids are chosen first.
        rows = await conn.fetch(
            f"""
            WITH chosen AS (
                SELECT id FROM parked_events
                WHERE {where}
                  AND (program, transaction_id) IN (SELECT * FROM unnest(${n + 1}::text[], ${n + 2}::text[]))
                ORDER BY id LIMIT ${n + 3}
            )
            DELETE FROM parked_events WHERE id IN (SELECT id FROM chosen)
            RETURNING id, program, transaction_id, event_id, action, reason, source, parked_at
            """
            if not dry_run
            else f"""
            SELECT id, program, transaction_id, event_id, action, reason, source, parked_at
            FROM parked_events
            WHERE {where}
              AND (program, transaction_id) IN (SELECT * FROM unnest(${n + 1}::text[], ${n + 2}::text[]))
            ORDER BY id LIMIT ${n + 3}
            """,
            *args,
            [r["program"] for r in locked],
            [r["transaction_id"] for r in locked],
            limit,
        )
        expired = sorted((ExpiredParked(**dict(r)) for r in rows), key=lambda e: e.id)
        if not dry_run and expired:
            builder = OutboxBuilder(settings.topics)
            await write_outbox(
                conn,
                [
                    builder.result(
                        event_id=e.event_id,
                        program=e.program,
                        action=e.action,
                        transaction_id=e.transaction_id,
                        outcome="rejected",
                        error=(
                            PARKED_EXPIRED,
                            message or f"parked since {e.parked_at.isoformat()} ({e.reason}): expired",
                        ),
                    )
                    for e in expired
                ],
                settings.relay_lanes,
            )
    return expired
