"""``loyalty``: the one operator command (the ``loyalty`` console script; ``python -m
services.cli``). Set-up (``migrate``, ``create-topics``, ``check-programs``, ``setup``,
``new-api-key``, ``new-webhook-secret``: the functions of ``services/admin.py``, which
``python -m services.admin`` keeps running), and day-to-day operation: ``dlq``, ``parked``,
``outbox``, ``inbox``. Every command prints JSON, and nothing else on stdout, with ``--json``.

Settings come from the environment as for every process (``LOYALTY_…``, ``DATABASE_URL``,
``KAFKA_BOOTSTRAP_SERVERS``; Kafka security included); a caller may pass a ``Settings`` as the
click context object instead (the tests do)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import asyncpg
import structlog
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from services.adapters.kafka import KafkaAccessError
from services.adapters.parked_expiry import expire_parked
from services.adapters.postgres import init_connection
from services.admin import create_topics, run_migrations
from services.api.auth import api_key_digest, new_api_key
from services.cli import dlq as dlq_ops
from services.cli.importing import import_app
from services.cli.inbox import forget, rejected_event_ids
from services.cli.outbox import outbox_status
from services.cli.output import (
    age,
    emit,
    parse_duration,
    parse_since,
    progress_bar,
    since_now,
    stderr,
    truncate,
)
from services.cli.parked import parked_events, parked_groups
from services.config.programs import ProgramsConfigError, load_programs
from services.config.settings import Settings
from services.config.webhook_secrets import new_webhook_secret

T = TypeVar("T")

app = typer.Typer(
    name="loyalty",
    help="Operate the loyalty engine: set-up, the DLQ, parked events, the outbox, the inbox, imports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
dlq_app = typer.Typer(help="The dead-letter topic: list, show and replay records.", no_args_is_help=True)
parked_app = typer.Typer(help="Parked events: list them, expire them.", no_args_is_help=True)
outbox_app = typer.Typer(help="The transactional outbox.", no_args_is_help=True)
inbox_app = typer.Typer(help="The idempotency inbox.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
app.add_typer(parked_app, name="parked")
app.add_typer(outbox_app, name="outbox")
app.add_typer(inbox_app, name="inbox")
app.add_typer(import_app, name="import")

Json = Annotated[bool, typer.Option("--json", help="Print JSON (and nothing else) on stdout.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what would be done; change nothing.")]


def settings_of(ctx: typer.Context) -> Settings:
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = Settings()
    return root.obj


def run(work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; the errors an operator can fix end the command with exit code 2."""
    try:
        return asyncio.run(work)
    except (ProgramsConfigError, KafkaAccessError, asyncpg.PostgresError, OSError) as exc:
        hint = " (run: loyalty migrate)" if isinstance(exc, asyncpg.UndefinedTableError) else ""
        stderr().print(f"[red]error:[/red] {escape(str(exc))}{hint}")
        raise typer.Exit(2) from None


@asynccontextmanager
async def connect(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(settings.database_url)
    await init_connection(conn)
    try:
        yield conn
    finally:
        await conn.close()


async def with_conn(settings: Settings, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    async with connect(settings) as conn:
        return await work(conn)


def table(*columns: str, title: str | None = None) -> Table:
    t = Table(title=title, title_justify="left")
    for column in columns:
        t.add_column(column, overflow="fold")
    return t


# --- set-up: the functions of services/admin.py --------------------------------------------


def _check_programs(settings: Settings) -> dict[str, Any]:
    try:
        programs = load_programs(settings.programs_file)
    except ProgramsConfigError as exc:
        stderr().print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    return {"programs": sorted(programs), "file": str(settings.programs_file)}


@app.command("check-programs")
def check_programs_cmd(ctx: typer.Context, as_json: Json = False) -> None:
    """Validate the programs file."""
    data = _check_programs(settings_of(ctx))
    emit(as_json, data, lambda c: c.print(f"programs OK: {', '.join(data['programs'])} ({data['file']})"))


def _print_migrations(c: Console, applied: list[str]) -> None:
    c.print(f"migrations applied: {', '.join(applied) or 'none (up to date)'}")


def _print_topics(c: Console, data: dict[str, Any]) -> None:
    c.print(f"topics created: {', '.join(data['created']) or 'none (all exist)'}")
    for difference in data["differences"]:
        c.print(f"topic differs from the settings: {difference}")


@app.command("migrate")
def migrate_cmd(ctx: typer.Context, as_json: Json = False) -> None:
    """Apply the pending database migrations."""
    applied = run(run_migrations(settings_of(ctx)))
    emit(as_json, {"applied": applied}, lambda c: _print_migrations(c, applied))


async def _topics(settings: Settings) -> dict[str, Any]:
    report = await create_topics(settings)
    return {"created": report.created, "differences": report.differences}


@app.command("create-topics")
def create_topics_cmd(ctx: typer.Context, as_json: Json = False) -> None:
    """Create the missing topics; name how existing ones differ from the settings."""
    data = run(_topics(settings_of(ctx)))
    emit(as_json, data, lambda c: _print_topics(c, data))


@app.command("setup")
def setup_cmd(ctx: typer.Context, as_json: Json = False) -> None:
    """check-programs, migrate and create-topics in one."""
    settings = settings_of(ctx)
    programs = _check_programs(settings)
    applied = run(run_migrations(settings))
    topics = run(_topics(settings))

    def render(c: Console) -> None:
        c.print(f"programs OK: {', '.join(programs['programs'])} ({programs['file']})")
        _print_migrations(c, applied)
        _print_topics(c, topics)

    emit(as_json, {**programs, "migrations_applied": applied, **topics}, render)


@app.command("new-api-key")
def new_api_key_cmd(as_json: Json = False) -> None:
    """A new read API key and the SHA-256 digest to list under the program's api_keys_sha256."""
    key = new_api_key()
    data = {"api_key": key, "sha256": api_key_digest(key)}

    def render(c: Console) -> None:
        c.print(f"api key (give it to the program's platform; it is not stored): {key}")
        c.print(f"add to the program's api_keys_sha256 in the programs file: {data['sha256']}")

    emit(as_json, data, render)


@app.command("new-webhook-secret")
def new_webhook_secret_cmd(as_json: Json = False) -> None:
    """A new webhook secret (whsec_…) for LOYALTY_WEBHOOK_SECRETS(_DIR); not stored."""
    secret = new_webhook_secret()
    emit(as_json, {"secret": secret}, lambda c: c.print(secret))


# --- dlq -----------------------------------------------------------------------------------


def _refs(refs: list[str]) -> list[tuple[int, int]]:
    try:
        return [dlq_ops.parse_ref(r) for r in refs]
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _read_dlq(
    settings: Settings,
    as_json: bool,
    codes: list[str] | None = None,
    source_topic: str | None = None,
    refs: list[tuple[int, int]] | None = None,
) -> list[dlq_ops.DlqRecord]:
    with progress_bar(f"reading {settings.topics.dlq}", not as_json) as progress:
        return run(
            dlq_ops.read_dlq(
                settings, codes=codes or (), source_topic=source_topic, refs=refs or (), progress=progress
            )
        )


@dlq_app.command("list")
def dlq_list(
    ctx: typer.Context,
    code: Annotated[
        list[str] | None, typer.Option("--code", help="Only this error code (repeatable).")
    ] = None,
    source_topic: Annotated[str | None, typer.Option("--source-topic", help="Only from this topic.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show the newest N.")] = 50,
    as_json: Json = False,
) -> None:
    """The DLQ records with their reasons (error code and message, source topic:partition:offset)."""
    settings = settings_of(ctx)
    records = _read_dlq(settings, as_json, code, source_topic)
    shown = sorted(records, key=lambda r: (r.timestamp, r.partition, r.offset))[-limit:]
    by_code = dict(sorted(Counter(r.code or "?" for r in records).items()))
    data = {
        "topic": settings.topics.dlq,
        "total": len(records),
        "by_code": by_code,
        "records": [r.summary() for r in shown],
    }

    def render(c: Console) -> None:
        t = table("ref", "key", "code", "message", "source", "age", title=f"{settings.topics.dlq}")
        for r in shown:
            key = truncate(r.key.decode(errors="replace") if r.key else "", 24)
            t.add_row(
                r.ref, key, r.code or "?", truncate(r.message), r.source or "?", age(since_now(r.timestamp))
            )
        c.print(t)
        counts = ", ".join(f"{k}: {v}" for k, v in by_code.items()) or "none"
        c.print(f"{len(records)} record(s) ({counts}); showing {len(shown)}")

    emit(as_json, data, render)


@dlq_app.command("show")
def dlq_show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="PARTITION:OFFSET of the DLQ record.")],
    as_json: Json = False,
) -> None:
    """One DLQ record: its value and every header."""
    settings = settings_of(ctx)
    wanted = _refs([ref])
    records = _read_dlq(settings, as_json, refs=wanted)
    if not records:
        stderr().print(f"[red]error:[/red] no record {ref} on {settings.topics.dlq}")
        raise typer.Exit(1)
    record = records[0]

    def render(c: Console) -> None:
        t = table("field", "value", title=f"{settings.topics.dlq} {record.ref}")
        t.add_row("timestamp", record.timestamp.isoformat())
        t.add_row("key", record.key.decode(errors="replace") if record.key else "")
        for name, value in record.headers.items():
            t.add_row(f"header {name}", value)
        c.print(t)
        c.print(record.value.decode(errors="replace"), markup=False)

    emit(as_json, record.detail(), render)


@dlq_app.command("replay")
def dlq_replay(
    ctx: typer.Context,
    refs: Annotated[list[str] | None, typer.Argument(help="PARTITION:OFFSET of DLQ records.")] = None,
    code: Annotated[list[str] | None, typer.Option("--code", help="Every record with this code.")] = None,
    source_topic: Annotated[str | None, typer.Option("--source-topic", help="Only from this topic.")] = None,
    dry_run: DryRun = False,
    as_json: Json = False,
) -> None:
    """Re-produce chosen records (or all of a code) to their source topic, once each.

    Each goes with its original key and value and the header dlq-replay: PARTITION:OFFSET."""
    if not refs and not code:
        raise typer.BadParameter("name records (PARTITION:OFFSET ...) or --code")
    settings = settings_of(ctx)
    wanted = _refs(refs or [])
    records = _read_dlq(settings, as_json, code, source_topic, wanted)
    missing = sorted(set(wanted) - {(r.partition, r.offset) for r in records})
    report = run(with_conn(settings, lambda conn: dlq_ops.replay(settings, conn, records, dry_run)))
    data = {**report.as_json(), "not_found": [f"{p}:{o}" for p, o in missing], "dry_run": dry_run}

    def render(c: Console) -> None:
        t = table("ref", "code", "to", "result", title="dlq replay" + (" (dry run)" if dry_run else ""))
        for r in report.replayed:
            t.add_row(r.ref, r.code or "?", r.source_topic or "", "would replay" if dry_run else "replayed")
        for r in report.already:
            t.add_row(r.ref, r.code or "?", r.source_topic or "", "already replayed: skipped")
        for r, why in report.unreplayable:
            t.add_row(r.ref, r.code or "?", "", f"skipped: {why}")
        for p, o in missing:
            t.add_row(f"{p}:{o}", "", "", "not found")
        c.print(t)

    emit(as_json, data, render)


# --- parked --------------------------------------------------------------------------------

Programs = Annotated[list[str] | None, typer.Option("--program", help="Only this program (repeatable).")]
Reasons = Annotated[
    list[str] | None, typer.Option("--reason", help="Only this reason, e.g. awaiting_checkout (repeatable).")
]
OlderThan = Annotated[str | None, typer.Option("--older-than", help="Parked longer than this: 12h, 3d, 2w.")]


@parked_app.command("list")
def parked_list(
    ctx: typer.Context,
    program: Programs = None,
    reason: Reasons = None,
    older_than: OlderThan = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="Events listed, oldest first.")] = 50,
    as_json: Json = False,
) -> None:
    """Parked events: counts by program and reason with their ages, then the oldest events."""
    settings = settings_of(ctx)
    seconds = None if older_than is None else parse_duration(older_than)

    async def work(conn: asyncpg.Connection) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        groups = await parked_groups(conn, program, reason, seconds)
        events = await parked_events(conn, program, reason, seconds, limit)
        return groups, events

    groups, events = run(with_conn(settings, work))

    def render(c: Console) -> None:
        t = table("program", "reason", "count", "oldest", "newest", title="parked events")
        for g in groups:
            t.add_row(
                g["program"], g["reason"], str(g["count"]), age(g["oldest_seconds"]), age(g["newest_seconds"])
            )
        c.print(t)
        if events:
            e = table("program", "transaction", "event id", "action", "reason", "age", "source")
            for ev in events:
                e.add_row(
                    ev["program"],
                    ev["transaction_id"],
                    ev["event_id"],
                    ev["action"],
                    ev["reason"],
                    age(ev["age_seconds"]),
                    ev["source"],
                )
            c.print(e)
        c.print(f"{sum(g['count'] for g in groups)} parked event(s)")

    emit(as_json, {"groups": groups, "events": events}, render)


@parked_app.command("expire")
def parked_expire(
    ctx: typer.Context,
    program: Programs = None,
    reason: Reasons = None,
    older_than: OlderThan = None,
    everything: Annotated[bool, typer.Option("--all", help="Expire every parked event.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 10_000,
    dry_run: DryRun = False,
    as_json: Json = False,
) -> None:
    """Expire parked events: final result rejected (parked_expired), row deleted.

    Their results are published by the consumers' relays. Events of a transaction a consumer
    holds at that moment are left for the next run."""
    if not (program or reason or older_than or everything):
        raise typer.BadParameter("choose with --program, --reason or --older-than (or --all)")
    settings = settings_of(ctx)
    seconds = None if older_than is None else parse_duration(older_than)
    expired = run(
        with_conn(
            settings,
            lambda conn: expire_parked(
                conn,
                settings,
                programs=program,
                reasons=reason,
                older_than_seconds=seconds,
                limit=limit,
                dry_run=dry_run,
            ),
        )
    )
    rows = [
        {
            "program": e.program,
            "transaction_id": e.transaction_id,
            "event_id": e.event_id,
            "action": e.action,
            "reason": e.reason,
            "parked_at": e.parked_at,
        }
        for e in expired
    ]

    def render(c: Console) -> None:
        t = table(
            "program", "transaction", "event id", "action", "reason", "age", title="expired parked events"
        )
        for e in expired:
            t.add_row(
                e.program, e.transaction_id, e.event_id, e.action, e.reason, age(since_now(e.parked_at))
            )
        c.print(t)
        c.print(f"{len(expired)} parked event(s) {'would be ' if dry_run else ''}expired")

    emit(as_json, {"expired": rows, "dry_run": dry_run}, render)


# --- outbox --------------------------------------------------------------------------------


@outbox_app.command("status")
def outbox_status_cmd(ctx: typer.Context, as_json: Json = False) -> None:
    """Unpublished rows (count, oldest, per topic) and their topics the broker lacks."""
    settings = settings_of(ctx)
    status = run(with_conn(settings, lambda conn: outbox_status(settings, conn)))

    def render(c: Console) -> None:
        t = table("topic", "unpublished", "oldest", "on the broker", title="outbox backlog")
        for row in status["topics"]:
            exists = "yes" if row["exists"] else "[red]MISSING[/red]"
            t.add_row(row["topic"], str(row["unpublished"]), age(row["oldest_seconds"]), exists)
        c.print(t)
        c.print(
            f"{status['unpublished']} unpublished, oldest {age(status['oldest_unpublished_seconds'])};"
            f" {status['published_kept']} published rows kept for retention"
        )
        if status["missing_topics"]:
            c.print(
                f"[red]missing topics:[/red] {', '.join(status['missing_topics'])}"
                " (create them: loyalty create-topics)"
            )

    emit(as_json, status, render)


# --- inbox ---------------------------------------------------------------------------------


@inbox_app.command("forget")
def inbox_forget(
    ctx: typer.Context,
    program: Annotated[str, typer.Option("--program", help="The program the events name.")],
    event_id: Annotated[
        list[str] | None, typer.Option("--event-id", help="An event id (inbox key; repeatable).")
    ] = None,
    code: Annotated[
        str | None,
        typer.Option(
            "--code", help="Events whose last result is rejected with this code, e.g. unknown_program."
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="With --code: results since (2h, 3d, or an ISO time).")
    ] = None,
    dry_run: DryRun = False,
    as_json: Json = False,
) -> None:
    """Delete inbox keys, so those events are applied when delivered again.

    For unknown_program rejections once the program is configured, or after a fix; the events
    are then replayed or re-sent by their producer."""
    if bool(event_id) == bool(code):
        raise typer.BadParameter("give either --event-id ... or --code")
    if since and not code:
        raise typer.BadParameter("--since goes with --code")
    settings = settings_of(ctx)
    keys = list(event_id or [])
    if code:
        when = None if since is None else parse_since(since)
        with progress_bar(f"reading {settings.topics.event_results}", not as_json) as progress:
            keys = run(rejected_event_ids(settings, program, code, when, progress))
    forgotten = run(with_conn(settings, lambda conn: forget(conn, program, keys, dry_run))) if keys else []
    found = {r["event_key"] for r in forgotten}
    not_in_inbox = sorted(set(keys) - found)

    def render(c: Console) -> None:
        verb = "to forget (dry run)" if dry_run else "forgotten"
        t = table("program", "event key", "action", "source", "received", title=f"inbox keys {verb}")
        for r in forgotten:
            t.add_row(
                r["program"], r["event_key"], r["action"] or "", r["source"], age(since_now(r["received_at"]))
            )
        c.print(t)
        c.print(f"{len(forgotten)} key(s) {verb}; {len(not_in_inbox)} not in the inbox")

    emit(as_json, {"forgotten": forgotten, "not_in_inbox": not_in_inbox, "dry_run": dry_run}, render)


def main() -> None:
    """The console script: logs (the engine's and the libraries') go to stderr, so stdout
    carries only the command's output."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    app()


if __name__ == "__main__":
    main()
