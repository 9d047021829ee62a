"""``loyalty parked``: the parked events by program, reason and age; expiry through the shared
``services.adapters.parked_expiry.expire_parked``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from services.adapters.parked_expiry import parked_filters


async def parked_groups(
    conn: asyncpg.Connection,
    programs: Sequence[str] | None,
    reasons: Sequence[str] | None,
    older_than_seconds: float | None,
) -> list[dict[str, Any]]:
    """Counts and ages by program and reason."""
    where, args = parked_filters(programs, reasons, older_than_seconds)
    rows = await conn.fetch(
        f"""
        SELECT program, reason, count(*) AS count,
               extract(epoch FROM now() - min(parked_at))::float8 AS oldest_seconds,
               extract(epoch FROM now() - max(parked_at))::float8 AS newest_seconds
        FROM parked_events WHERE {where}
        GROUP BY program, reason ORDER BY program, reason
        """,
        *args,
    )
    return [dict(r) for r in rows]


async def parked_events(
    conn: asyncpg.Connection,
    programs: Sequence[str] | None,
    reasons: Sequence[str] | None,
    older_than_seconds: float | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The oldest parked events first, at most ``limit``."""
    where, args = parked_filters(programs, reasons, older_than_seconds)
    rows = await conn.fetch(
        f"""
        SELECT id, program, reason, transaction_id, event_id, action, source, parked_at,
               extract(epoch FROM now() - parked_at)::float8 AS age_seconds
        FROM parked_events WHERE {where}
        ORDER BY parked_at, id LIMIT ${len(args) + 1}
        """,
        *args,
        limit,
    )
    return [dict(r) for r in rows]
