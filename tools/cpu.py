"""CPU time of the bench's components, from the processes' own counters (``/proc/<pid>/stat``).

CPU per event is steadier on a shared machine than a rate, so every bench stage reports it per
component: ``before = snapshot(...)``, the stage, ``after = snapshot(...)``, ``after - before``.

- **engine**: the consumer processes the bench spawned (their pids; sample them before they are
  stopped, since a reaped process loses its counters), or the bench's own process for a stage
  run in-process (the timer sweep).
- **postgres**: every process named ``postgres`` (the postmaster, its background processes and
  every backend). A backend that exits during the stage is still counted: when the postmaster
  reaps it, its time moves to the postmaster's reaped-children counters (``cutime``,
  ``cstime``), which are added. A backend that starts during the stage counts from 0.
- **broker**: the JVM running ``kafka.Kafka`` (all its threads).
- **bench**: the bench's own process (load generator, probes, pollers), kept apart from the
  engine, and the PostgreSQL backends of the bench's own connections (its "done yet?" polls
  count rows over the whole run: up to a tenth of a millisecond per event, which is not the
  engine's cost). Zero when the bench's process is the engine.

Linux only; the counters tick at ``SC_CLK_TCK`` (100 Hz: 10 ms per process per reading).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

TICK = 1.0 / os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


@dataclass(frozen=True)
class _Stat:
    comm: str
    ppid: int
    own: float  # utime + stime, seconds
    reaped: float  # cutime + cstime: children waited for, seconds


def _stat(pid: int) -> _Stat | None:
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:  # exited between the listing and the read
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split at the last ")".
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14..17.
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return _Stat(comm, int(fields[1]), (utime + stime) * TICK, (cutime + cstime) * TICK)


def _pids() -> list[int]:
    return [int(p.name) for p in PROC.iterdir() if p.name.isdigit()]


def _cmdline(pid: int) -> bytes:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def broker_pids() -> list[int]:
    """The JVMs running ``kafka.Kafka`` (the local broker)."""
    return [pid for pid in _pids() if b"kafka.Kafka" in _cmdline(pid)]


def process_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds, 0 when it is gone."""
    stat = _stat(pid)
    return stat.own if stat else 0.0


@dataclass(frozen=True)
class Cost:
    """CPU seconds per component over a stage, and its wall seconds."""

    wall: float = 0.0
    engine: float = 0.0
    postgres: float = 0.0
    broker: float = 0.0
    bench: float = 0.0
    notes: tuple[str, ...] = ()

    @property
    def total(self) -> float:
        """Engine, PostgreSQL and broker: the system's cost, without the load generator."""
        return self.engine + self.postgres + self.broker

    def per_event_ms(self, events: int) -> dict[str, float]:
        per = 1000.0 / max(events, 1)
        return {
            "engine": self.engine * per,
            "postgres": self.postgres * per,
            "broker": self.broker * per,
            "total": self.total * per,
            "bench": self.bench * per,
        }


@dataclass(frozen=True)
class Snapshot:
    at: float
    engine: float
    postgres: float
    broker: float
    bench: float
    postgres_pids: frozenset[int] = field(default_factory=frozenset)

    def __sub__(self, before: Snapshot) -> Cost:
        started = len(self.postgres_pids - before.postgres_pids)
        exited = len(before.postgres_pids - self.postgres_pids)
        notes = (f"postgres: {started} processes started, {exited} exited",) if started or exited else ()
        return Cost(
            wall=self.at - before.at,
            engine=self.engine - before.engine,
            postgres=self.postgres - before.postgres,
            broker=self.broker - before.broker,
            bench=self.bench - before.bench,
            notes=notes,
        )


def snapshot(
    engine_pids: Iterable[int] = (), *, in_process: bool = False, bench_backends: Iterable[int] = ()
) -> Snapshot:
    """Counters now. ``engine_pids``: the engine's processes (absent ones count 0);
    ``in_process``: the bench's own process is the engine (then ``bench`` stays 0);
    ``bench_backends``: PostgreSQL backends serving the bench's own connections, counted as
    bench rather than postgres (keep them connected until the last snapshot)."""
    own = time.process_time()
    postgres: dict[int, _Stat] = {}
    broker = 0.0
    for pid in _pids():
        stat = _stat(pid)
        if stat is None:
            continue
        if stat.comm == "postgres":
            postgres[pid] = stat
        elif stat.comm == "java" and b"kafka.Kafka" in _cmdline(pid):
            broker += stat.own
    # Live processes, plus what each postmaster (a postgres process whose parent is not one)
    # has reaped of exited backends.
    pg = sum(s.own for s in postgres.values()) + sum(
        s.reaped for s in postgres.values() if s.ppid not in postgres
    )
    engine = sum(process_seconds(pid) for pid in engine_pids)
    polls = sum(postgres[pid].own for pid in bench_backends if pid in postgres)
    return Snapshot(
        at=time.perf_counter(),
        engine=engine + (own if in_process else 0.0),
        postgres=pg - polls,
        broker=broker,
        bench=(0.0 if in_process else own) + polls,
        postgres_pids=frozenset(postgres),
    )


def speed_probe() -> float:
    """CPU milliseconds of a fixed pure-Python workload that does not depend on the engine's
    code (the best of three): how fast this machine runs Python at the moment. On a shared
    host it drifts by a third between runs, and CPU per event drifts with it; the bench prints
    it at every stage so that runs are compared at a known speed."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        acc = Decimal(0)
        doc: dict[str, object] = {}
        for i in range(20_000):
            doc[str(i)] = [i, f"item-{i}", i * 0.5]
            acc += Decimal(i) / 7
        json.loads(json.dumps(doc))
        hashlib.sha256(str(acc).encode() * 1000).hexdigest()
        best = min(best, time.process_time() - started)
    return best * 1000


def machine() -> str:
    """One line of machine facts for a bench header."""
    import platform
    import sys

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
        f"Python {sys.version.split()[0]} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}, load average {load}"
    )
