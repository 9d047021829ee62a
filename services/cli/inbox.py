"""``loyalty inbox forget``: delete inbox keys so that those events are applied when they are
delivered again (redelivered, replayed, re-sent): after an ``unknown_program`` rejection once
the program is configured, or after a fix.

Rejection codes are not stored in the database (results only go to
``loyalty.event-results``), so selecting by code reads that topic (bounded, like the DLQ) and
takes the events of the program whose last result (duplicates aside) is ``rejected`` with that code: an event
applied since (after an earlier forget) is never forgotten, so it is not applied twice."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from services.cli.reader import Progress, read_topic
from services.config.settings import Settings


async def rejected_event_ids(
    settings: Settings,
    program: str,
    code: str,
    since: datetime | None = None,
    progress: Progress | None = None,
) -> list[str]:
    """Ids of the program's events whose last result is ``rejected`` with ``code``
    (results at or after ``since`` when given)."""
    last: dict[str, tuple[int, dict[str, Any]]] = {}
    async with contextlib.aclosing(read_topic(settings, settings.topics.event_results, progress)) as rs:
        async for record in rs:
            try:
                result = orjson.loads(record.value)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(result, dict) or result.get("program") != program:
                continue
            event_id = result.get("event_id")
            # A duplicate changed nothing: the result before it stands.
            if isinstance(event_id, str) and result.get("outcome") != "duplicate":
                last[event_id] = (record.timestamp, result)
    cutoff = None if since is None else since.timestamp() * 1000
    return sorted(
        event_id
        for event_id, (ts, result) in last.items()
        if result.get("outcome") == "rejected"
        and (result.get("error") or {}).get("code") == code
        and (cutoff is None or ts >= cutoff)
    )


async def forget(
    conn: asyncpg.Connection, program: str, event_keys: Sequence[str], dry_run: bool = False
) -> list[dict[str, Any]]:
    """Delete the program's inbox keys among ``event_keys``; return the rows (found ones only
    on a dry run)."""
    verb = "SELECT program, event_key, action, source, received_at FROM" if dry_run else "DELETE FROM"
    rows = await conn.fetch(
        f"""
        {verb} inbox WHERE program = $1 AND event_key = ANY($2::text[])
        {"" if dry_run else "RETURNING program, event_key, action, source, received_at"}
        """,
        program,
        list(event_keys),
    )
    return sorted((dict(r) for r in rows), key=lambda r: r["event_key"])
