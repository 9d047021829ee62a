"""``loyalty import transactions FILE``: the historical import (services/entrypoints/importer.py).

Mounted by the ``loyalty`` command as ``app.add_typer(import_app, name="import")``; also runs
alone: ``python -m services.cli.importing transactions FILE``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import asyncpg
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from services.cli.output import emit, stderr
from services.config.programs import ProgramsConfigError
from services.config.settings import Settings
from services.entrypoints.importer import ImportSummary, import_transactions
from services.service_layer.importing import ImportFileError

import_app = typer.Typer(help="Import history: whole, final transactions from a file.", no_args_is_help=True)


@import_app.callback()
def _group() -> None:
    """A group even with one command, so that ``transactions`` is always named."""


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr with lines done, rate and ETA; None when disabled."""
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn("importing"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} lines/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=stderr(),
    ) as bar:
        task = bar.add_task("import", total=None, rate="-")

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)
            speed = bar.tasks[task].speed
            bar.update(task, rate=f"{speed:,.0f}" if speed else "-")

        yield update


def _render(summary: ImportSummary) -> Callable[[Console], None]:
    def render(console: Console) -> None:
        console.print(
            f"{summary.file}: {summary.lines:,} lines read, [green]{summary.imported:,} imported[/green], "
            f"{summary.duplicates:,} duplicates (imported before), "
            f"[{'red' if summary.rejected else 'green'}]{summary.rejected:,} rejected[/] "
            f"in {summary.seconds:.1f} s ({summary.rate:,.0f} lines/s)"
        )
        for code, n in sorted(summary.rejects_by_code.items()):
            console.print(f"  {code}: {n:,}")
        if summary.rejected:
            console.print(f"rejects (line number and reason): {escape(summary.rejects_file)}")
        if summary.emit_events:
            console.print("status changes and webhooks are in the outbox; the relays publish them")

    return render


@import_app.command("transactions")
def transactions(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSON Lines or CSV file.")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="jsonl or csv (default: by the file's extension).")
    ] = None,
    rejects: Annotated[
        Path | None, typer.Option("--rejects", help="Rejects file (default: FILE.rejects.jsonl).")
    ] = None,
    emit_events: Annotated[
        bool, typer.Option("--emit-events", help="Publish the status changes and webhooks (off by default).")
    ] = False,
    chunk: Annotated[
        int, typer.Option("--chunk", min=1, help="Transactions per database transaction.")
    ] = 2000,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (and nothing else) on stdout.")] = False,
) -> None:
    """Import whole, final transactions (accepted, refunded, partially refunded): balances,
    points ledger and purchase attributes as the consumers would leave them. Idempotent; a
    killed import, run again, goes on where it stopped."""
    root = ctx.find_root()
    settings = root.obj if isinstance(root.obj, Settings) else Settings()
    try:
        with _progress(not as_json and sys.stderr.isatty()) as progress:
            summary = asyncio.run(
                import_transactions(
                    settings,
                    file,
                    fmt=fmt,
                    rejects_path=rejects,
                    emit_events=emit_events,
                    progress=progress,
                    chunk_size=chunk,
                )
            )
    except (ImportFileError, ProgramsConfigError, ValueError, asyncpg.PostgresError, OSError) as exc:
        stderr().print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    emit(as_json, summary.as_json(), _render(summary))


if __name__ == "__main__":
    import_app()
