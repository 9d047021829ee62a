"""The historical import (``loyalty import transactions FILE``): a JSON Lines or CSV file of
whole, final transactions into the engine's state, as the consumers would have left it.

The file is read in order and cut into chunks; each chunk is one database transaction
(``services/adapters/importer.py``) with the chunk's inbox keys, so a second import changes
nothing and a killed one, run again, skips what was committed and goes on from there. Bad lines
(their line number, a code and why) go to the rejects file, one JSON object per line; the rest
goes in. No webhooks unless ``emit_events``: then the status changes and webhooks the
consumers would have sent are written to the outbox, which the relays publish.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from services.adapters.importer import import_chunk
from services.adapters.postgres import create_pool, in_transaction
from services.config.programs import load_programs
from services.config.settings import Settings
from services.config.webhook_secrets import read_webhook_secrets
from services.domain.program import Program
from services.service_layer.importing import Format, ImportCore, LineParser, Parsed, Reject
from services.service_layer.messages import OutboxBuilder

Progress = Callable[[int, int], None]  # (lines done, lines in the file)


@dataclass
class ImportSummary:
    file: str
    format: str
    lines: int = 0  # records read (blank lines are not counted)
    imported: int = 0
    duplicates: int = 0  # imported before (a second import, or a killed one's committed part)
    rejected: int = 0
    rejects_by_code: dict[str, int] = field(default_factory=dict)
    rejects_file: str = ""
    emit_events: bool = False
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Records handled per second."""
        return self.lines / self.seconds if self.seconds else 0.0

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "rate": round(self.rate, 1)}


def format_of(path: Path, fmt: str | None) -> Format:
    chosen = fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    if chosen not in ("jsonl", "csv"):
        raise ValueError(f"format {chosen!r}: jsonl or csv")
    return "csv" if chosen == "csv" else "jsonl"


def count_lines(path: Path) -> int:
    lines, last = 0, b"\n"
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def _records(path: Path, fmt: Format, parser: LineParser, f: IO[bytes]) -> Iterator[Parsed | Reject]:
    if fmt == "csv":
        with path.open(newline="", encoding="utf-8") as text:
            yield from parser.csv(text)
    else:
        yield from parser.jsonl(enumerate(f, start=1))


async def import_transactions(
    settings: Settings,
    path: Path,
    *,
    fmt: str | None = None,
    rejects_path: Path | None = None,
    emit_events: bool = False,
    progress: Progress | None = None,
    programs: Mapping[str, Program] | None = None,
    chunk_size: int = 2000,
) -> ImportSummary:
    """Import ``path``; the rejects go to ``rejects_path`` (default ``<FILE>.rejects.jsonl``)."""
    kind = format_of(path, fmt)
    programs = dict(programs) if programs is not None else load_programs(settings.programs_file)
    builder = None
    if emit_events:
        secrets = read_webhook_secrets(settings.webhook_secrets, settings.webhook_secrets_dir, programs)
        builder = OutboxBuilder(settings.topics, secrets)
    core = ImportCore(programs, builder)
    parser = LineParser(programs, settings.default_program)
    rejects_path = rejects_path or path.with_name(path.name + ".rejects.jsonl")
    summary = ImportSummary(str(path), kind, rejects_file=str(rejects_path), emit_events=emit_events)
    total = count_lines(path)
    source = f"import:{path.name}"
    started = time.monotonic()
    pool = await create_pool(settings, size=1)
    try:
        with path.open("rb") as f, rejects_path.open("w", encoding="utf-8") as rejects:

            def reject(r: Reject) -> None:
                summary.rejected += 1
                summary.rejects_by_code[r.code] = summary.rejects_by_code.get(r.code, 0) + 1
                rejects.write(json.dumps(r.as_json()) + "\n")

            async def flush(chunk: list[Parsed]) -> None:
                outcomes = await in_transaction(
                    pool,
                    settings,
                    "import_chunk",
                    lambda conn: import_chunk(conn, core, chunk, source, settings.relay_lanes),
                )
                for outcome in outcomes:
                    if outcome == "imported":
                        summary.imported += 1
                    elif outcome == "duplicate":
                        summary.duplicates += 1
                    else:
                        reject(outcome)
                rejects.flush()
                if progress is not None:
                    progress(chunk[-1].line, total)

            records = _records(path, kind, parser, f)

            def read_chunk() -> tuple[list[Parsed], list[Reject], int]:
                chunk: list[Parsed] = []
                bad: list[Reject] = []
                read = 0
                for item in records:
                    read += 1
                    if isinstance(item, Reject):
                        bad.append(item)
                    else:
                        chunk.append(item)
                        if len(chunk) >= chunk_size:
                            break
                return chunk, bad, read

            # The next chunk is parsed (in a thread) while the database writes this one.
            upcoming = asyncio.create_task(asyncio.to_thread(read_chunk))
            while True:
                chunk, bad, read = await upcoming
                if not read:
                    break
                upcoming = asyncio.create_task(asyncio.to_thread(read_chunk))
                summary.lines += read
                for r in bad:
                    reject(r)
                if chunk:
                    await flush(chunk)
            if progress is not None:
                progress(total, total)
    finally:
        await pool.close()
    summary.seconds = round(time.monotonic() - started, 3)
    return summary
