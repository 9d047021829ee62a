"""A generated historical-import file (JSON Lines) for the bench, the demo and the tests:
``n`` transactions of ``customers`` customers, a mix of accepted, refunded and partially
refunded ones, some with item lines, some with ``points_earned`` given, some burning points;
``bad_every`` > 0 makes every ``bad_every``-th line bad (in turn: not JSON, an unknown field,
a partial refund without its amount, a burn beyond what the customer has)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def import_record(n: int, program: str, customers: int, prefix: str) -> dict[str, Any]:
    at = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=7 * n)
    total = 20 + (n * 37) % 180
    record: dict[str, Any] = {
        "program": program,
        "customer": f"{prefix}c{n % customers}",
        "transaction_id": f"{prefix}t{n}",
        "status": "accepted",
        "occurred_at": at.isoformat(),
        "accepted_at": (at + timedelta(days=14)).isoformat(),
        "total": f"{total}.50",
    }
    if n % 3 == 0:
        record["items"] = [
            {"product_id": f"p{n % 50}", "price": f"{total - 10}.50", "quantity": 1, "category": "shoes"},
            {"product_id": f"p{(n + 1) % 50}", "subtotal": "10.00", "quantity": 2},
        ]
    if n % 7 == 0:
        record["points_earned"] = total // 2
    if n % 10 == 4:
        record["status"] = "refunded"
    elif n % 10 == 7:
        record["status"] = "partially_refunded"
        record["refunded"] = "10.25"
    if n % 25 == 23 and n >= 2 * customers:  # by then the customer has earned points on earlier lines
        record["points_burned"] = 5
    return record


def bad_line(n: int, program: str, prefix: str) -> str:
    kind = (n // 100) % 4
    if kind == 0:
        return '{"transaction_id": "broken'
    if kind == 1:
        return json.dumps(
            {
                "program": program,
                "customer": f"{prefix}bad",
                "transaction_id": f"{prefix}bad{n}",
                "status": "accepted",
                "occurred_at": "2024-01-01T00:00:00+00:00",
                "total": "1",
                "colour": "red",
            }
        )
    if kind == 2:
        return json.dumps(
            {
                "program": program,
                "customer": f"{prefix}bad",
                "transaction_id": f"{prefix}bad{n}",
                "status": "partially_refunded",
                "occurred_at": "2024-01-01T00:00:00+00:00",
                "total": "10",
            }
        )
    return json.dumps(
        {
            "program": program,
            "customer": f"{prefix}poor{n}",
            "transaction_id": f"{prefix}bad{n}",
            "status": "accepted",
            "occurred_at": "2024-01-01T00:00:00+00:00",
            "total": "10",
            "points_burned": 1000,
        }
    )


def write_import_file(
    path: Path, n: int, program: str, *, customers: int | None = None, bad_every: int = 0, prefix: str = ""
) -> list[int]:
    """Write ``n`` lines; return the line numbers (from 1) of the bad ones."""
    customers = customers or max(1, n // 10)
    bad: list[int] = []
    with path.open("w") as f:
        for i in range(n):
            line = i + 1
            if bad_every and line % bad_every == 0:
                bad.append(line)
                f.write(bad_line(i, program, prefix) + "\n")
            else:
                f.write(json.dumps(import_record(i, program, customers, prefix)) + "\n")
    return bad
