"""Per-service operations endpoint on 127.0.0.1:<metrics_port>: ``/metrics`` (Prometheus),
``/healthz`` (the process answers) and ``/readyz`` (``Readiness``: started, broker and database
reachable, no batch stuck retrying). A few lines of asyncio instead of a web framework:
consumers need nothing more."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


class Readiness:
    """What ``/readyz`` answers, tracked as the process runs (docs/retries.md):

    - started (and not stopping);
    - the database reachable: its latest sign (a committed batch, a successful probe) was a
      success, not a failure (a transient error in a batch or a failed probe);
    - the broker reachable: likewise (records polled, a successful metadata probe);
    - no batch stuck: none has been retrying transient failures for ``stuck_after`` seconds.

    A busy consumer is ready: a batch in progress says nothing against it."""

    def __init__(self, stuck_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stuck_after = stuck_after
        self.clock = clock
        self.started = False
        self._last: dict[str, tuple[bool, float]] = {}  # "database"/"broker" -> (ok, when)
        self._retrying_since: dict[str, float] = {}  # batch source (topic) -> first failure

    def saw(self, dependency: str, ok: bool) -> None:
        """A sign of life (or of failure) of ``"database"`` or ``"broker"``."""
        self._last[dependency] = (ok, self.clock())

    def reachable(self, dependency: str) -> bool:
        return self._last.get(dependency, (False, 0.0))[0]

    def retrying(self, source: str, unreachable: bool = True) -> None:
        """A batch from ``source`` met a transient failure (and will be tried again);
        ``unreachable``: the failure says the database is away (not a deadlock)."""
        self._retrying_since.setdefault(source, self.clock())
        if unreachable:
            self.saw("database", False)

    def done(self, source: str) -> None:
        """A batch from ``source`` committed."""
        self._retrying_since.pop(source, None)
        self.saw("database", True)

    def stuck(self) -> list[str]:
        now = self.clock()
        return sorted(s for s, since in self._retrying_since.items() if now - since >= self.stuck_after)

    def reasons(self) -> list[str]:
        """Why the process is not ready (empty: ready)."""
        reasons = [] if self.started else ["not started"]
        reasons += [f"{d} unreachable" for d in ("database", "broker") if not self.reachable(d)]
        reasons += [f"{source} stuck retrying" for source in self.stuck()]
        return reasons

    def __call__(self) -> bool:
        return not self.reasons()


class HealthServer:
    def __init__(self, port: int, ready: Callable[[], bool], host: str = "127.0.0.1") -> None:
        self.port = port
        self.host = host
        self.ready = ready
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            path = request.split(b" ")[1].decode() if request.count(b" ") >= 2 else "/"
            if path == "/metrics":
                status, body, ctype = "200 OK", generate_latest(), CONTENT_TYPE_LATEST
            elif path == "/healthz":
                status, body, ctype = "200 OK", b"ok\n", "text/plain"
            elif path == "/readyz":
                ok = self.ready()
                status = "200 OK" if ok else "503 Service Unavailable"
                body, ctype = (b"ready\n" if ok else b"not ready\n"), "text/plain"
            else:
                status, body, ctype = "404 Not Found", b"not found\n", "text/plain"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()
