"""The historical import (``loyalty import transactions FILE``) on the real database: a file of
100,000 transactions with 1% bad lines, a second import of it, and a killed import run again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import yaml

from services.config.programs import dump_programs
from services.config.settings import Settings
from services.domain.program import Program
from services.entrypoints.importer import import_transactions
from tests.integration.conftest import Db
from tools.import_file import write_import_file

ROOT = Path(__file__).resolve().parents[2]
EARN = {
    "currency": "EUR",
    "earn": {
        "level": "item",
        "points_per_unit": 1,
        "rounding": "floor",
        "category_multipliers": {"shoes": 2},
        "campaigns": [{"id": "big", "points": 15, "conditions": {"min_total": 100}}],
    },
    "exchange_rates": {"USD": "0.92"},
    "pending_period": {"seconds": 1209600},  # imported transactions are final all the same
}


async def state(pool: asyncpg.Pool, program: str) -> dict[str, Any]:
    """Everything an import writes, without the program's name and the write times."""
    customers = await pool.fetch(
        """SELECT customer_id, score, spendable, pending, spent, purchase_total, purchase_count,
                  purchase_items, purchase_first_date, purchase_last_date
           FROM customers WHERE program = $1 ORDER BY customer_id""",
        program,
    )
    ledger = await pool.fetch(
        """SELECT customer_id, transaction_id, movement, points, score, spendable, pending, spent,
                  event_key, at
           FROM points_ledger WHERE program = $1 ORDER BY transaction_id, id""",
        program,
    )
    history = await pool.fetch(
        """SELECT transaction_id, from_status, to_status, event_key, action, at
           FROM status_history WHERE program = $1 ORDER BY transaction_id, id""",
        program,
    )
    txns = await pool.fetch(
        "SELECT transaction_id, status, doc FROM transactions WHERE program = $1 ORDER BY transaction_id",
        program,
    )
    docs = []
    for row in txns:
        doc = json.loads(row["doc"])
        doc.pop("program")
        docs.append((row["transaction_id"], row["status"], doc))
    return {
        "customers": [tuple(r) for r in customers],
        "ledger": [tuple(r) for r in ledger],
        "history": [tuple(r) for r in history],
        "transactions": docs,
    }


def read_rejects(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def program_of(name: str) -> Program:
    return Program.model_validate({"name": name, **EARN})


async def test_import_100k_with_bad_lines_then_again(
    tmp_path: Path, database_url: str, db: asyncpg.Pool, dbq: Db, program_factory: Callable[..., Program]
) -> None:
    program = program_factory("imp", **EARN)
    path = tmp_path / "history.jsonl"
    bad = write_import_file(path, 100_000, program.name, bad_every=100, prefix="h-")
    settings = Settings(database_url=database_url, default_program=program.name)
    programs = {program.name: program}

    first = await import_transactions(settings, path, programs=programs)

    rejects = read_rejects(first.rejects_file)
    assert first.lines == 100_000
    assert first.rejected == len(rejects)
    assert first.imported + first.rejected == 100_000
    assert first.duplicates == 0
    # Every bad line is reported with its line number and reason; the rest went in.
    assert {r["line"] for r in rejects} == set(bad)
    assert all(r["code"] and r["reason"] for r in rejects)
    assert {r["code"] for r in rejects} == {"malformed_json", "schema_violation", "insufficient_points"}
    assert await dbq.count("transactions", program.name) == first.imported
    assert await dbq.ledger_mismatches(program.name) == []
    totals = await db.fetchrow(
        """SELECT count(*) FILTER (WHERE status = 'accepted') a,
                  count(*) FILTER (WHERE status = 'refunded') r,
                  count(*) FILTER (WHERE status = 'partially_refunded') p
           FROM transactions WHERE program = $1""",
        program.name,
    )
    assert totals["r"] > 0 and totals["p"] > 0 and totals["a"] > totals["r"] + totals["p"]
    # Purchase attributes count what was not fully refunded, as the consumers do.
    assert (
        await db.fetchval("SELECT sum(purchase_count) FROM customers WHERE program = $1", program.name)
        == totals["a"] + totals["p"]
    )
    before = await state(db, program.name)

    second = await import_transactions(settings, path, programs=programs)

    assert second.imported == 0
    parse_rejects = sum(1 for r in rejects if r["code"] in ("malformed_json", "schema_violation"))
    assert second.duplicates == 100_000 - parse_rejects
    assert second.rejected == parse_rejects
    assert await state(db, program.name) == before


async def test_killed_import_rerun_ends_where_a_clean_one_does(
    tmp_path: Path, database_url: str, db: asyncpg.Pool, dbq: Db
) -> None:
    suffix = os.urandom(3).hex()
    killed, clean = program_of(f"kill-{suffix}"), program_of(f"clean-{suffix}")
    programs_file = tmp_path / "programs.yaml"
    programs_file.write_text(dump_programs({killed.name: killed, clean.name: clean}))
    assert yaml.safe_load(programs_file.read_text())
    n = 30_000
    killed_file, clean_file = tmp_path / "killed.jsonl", tmp_path / "clean.jsonl"
    write_import_file(killed_file, n, killed.name, bad_every=100, prefix="k-")
    write_import_file(clean_file, n, clean.name, bad_every=100, prefix="k-")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "LOYALTY_PROGRAMS_FILE": str(programs_file),
        "LOYALTY_DEFAULT_PROGRAM": killed.name,
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "services.cli.importing", "transactions", str(killed_file)]
    proc = await asyncio.create_subprocess_exec(
        *command, "--json", "--chunk", "500", cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while await dbq.count("transactions", killed.name) < n // 4:
            assert proc.returncode is None, "the import ended before it could be killed"
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        await proc.wait()
    committed = await dbq.count("transactions", killed.name)
    assert 0 < committed < n
    assert await dbq.ledger_mismatches(killed.name) == []

    rerun = await asyncio.create_subprocess_exec(
        *command, "--json", cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await rerun.communicate()
    assert rerun.returncode == 0
    summary = json.loads(out)
    assert summary["duplicates"] >= committed
    settings = Settings(database_url=database_url, programs_file=programs_file)
    await import_transactions(settings, clean_file)

    assert await dbq.ledger_mismatches(killed.name) == []
    assert await state(db, killed.name) == await state(db, clean.name)
