"""``loyalty outbox status``: the backlog the relays have not published yet, and the topics
of unpublished rows that the broker lacks (the relay skips those rows and logs
``relay_topic_missing``: services/adapters/docs/outbox.md)."""

from __future__ import annotations

from typing import Any

import asyncpg

from services.cli.reader import topic_names
from services.config.settings import Settings


async def outbox_status(settings: Settings, conn: asyncpg.Connection) -> dict[str, Any]:
    total = await conn.fetchrow(
        """
        SELECT coalesce(sum(cardinality(topics)), 0) AS unpublished,
               extract(epoch FROM now() - min(created_at))::float8 AS oldest_seconds,
               min(created_at) AS oldest_at
        FROM outbox WHERE published_at IS NULL
        """
    )
    topics = await conn.fetch(
        """
        SELECT topic, count(*) AS unpublished,
               extract(epoch FROM now() - min(created_at))::float8 AS oldest_seconds
        FROM outbox, unnest(topics) AS topic WHERE published_at IS NULL GROUP BY topic ORDER BY topic
        """
    )
    published = await conn.fetchval(
        "SELECT coalesce(sum(cardinality(topics)), 0) FROM outbox WHERE published_at IS NOT NULL"
    )
    existing = await topic_names(settings) if topics else set()
    return {
        "unpublished": total["unpublished"],
        "oldest_unpublished_seconds": total["oldest_seconds"],
        "oldest_unpublished_at": total["oldest_at"],
        "published_kept": published,
        "topics": [{**dict(t), "exists": t["topic"] in existing} for t in topics],
        "missing_topics": sorted(t["topic"] for t in topics if t["topic"] not in existing),
    }
