"""The import stage of ``make bench``: a generated file of ``count`` transactions (1% bad lines)
imported by ``loyalty import transactions`` as its own process, timed from its start to its
exit, with the CPU of that process (engine), PostgreSQL and the broker (``tools/cpu.py``)."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from services.config.settings import Settings
from services.domain.program import Program
from tools.cpu import Cost, snapshot
from tools.import_file import write_import_file

ROOT = str(Path(__file__).resolve().parents[1])


async def bench_import(settings: Settings, program: Program, count: int) -> tuple[float, int, Cost]:
    """(seconds, transactions imported, CPU over the stage: the importer's own as engine)."""
    path = Path(tempfile.mkdtemp()) / "history.jsonl"
    write_import_file(path, count, program.name, bad_every=100, prefix="import-")
    env = {**os.environ, **settings.as_env(), "PYTHONPATH": ROOT}
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = snapshot()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "services.cli.importing", "transactions", str(path), "--json"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    cost = snapshot() - before
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    summary = json.loads(out)
    return float(summary["seconds"]), int(summary["imported"]), replace(cost, engine=own)
