"""Output of the operator commands: rich tables and progress bars for people, JSON (and
nothing else on stdout) with ``--json`` for scripts; durations and times as operators type
them."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``12h``, ``3d``, ``2w``, or combined (``1d12h``) -> seconds."""
    compact = text.replace(" ", "").lower()
    if not compact or _DURATION.sub("", compact):
        raise typer.BadParameter(f"{text!r}: expected a duration such as 90s, 15m, 12h, 3d, 1d12h")
    return sum(float(n) * _UNITS[unit] for n, unit in _DURATION.findall(compact))


def parse_since(text: str) -> datetime:
    """A duration back from now (``2h``) or an ISO 8601 time (UTC when it names no zone)."""
    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(text))
    except typer.BadParameter:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: expected a duration (2h, 3d) or an ISO 8601 time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def age(seconds: float | None) -> str:
    """``3d4h``, ``5h12m``, ``7m3s``, ``42s``; ``-`` for none."""
    if seconds is None:
        return "-"
    s = max(int(seconds), 0)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{s}s"
    return f"{s}s"


def since_now(when: datetime) -> float:
    return (datetime.now(UTC) - when).total_seconds()


def truncate(text: str | None, width: int = 60) -> str:
    if text is None:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def to_json(data: Any) -> str:
    return orjson.dumps(data, default=_default, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def stdout() -> Console:
    # Built at each use, so it writes to the sys.stdout of the moment (tests capture it).
    return Console(file=sys.stdout, highlight=False)


def stderr() -> Console:
    return Console(file=sys.stderr, highlight=False)


def emit(as_json: bool, data: Any, render: Callable[[Console], None]) -> None:
    """``data`` as JSON on stdout with ``--json``, else ``render`` on a rich console."""
    if as_json:
        sys.stdout.write(to_json(data) + "\n")
    else:
        render(stdout())


@contextmanager
def progress_bar(description: str, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A transient progress bar on stderr; yields the ``(done, total)`` callback (None when
    disabled, as with ``--json``)."""
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr(),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
