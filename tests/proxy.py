"""A TCP proxy that a test can cut and restore: a real outage between a service and its
database (established connections die, new ones are refused), not a mock."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct


class CuttableProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        await self.start()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers |= {client_writer, upstream_writer}

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.transport.abort()

        await asyncio.gather(
            pipe(client_reader, upstream_writer), self._downstream(upstream_reader, client_writer)
        )
        self._writers -= {client_writer, upstream_writer}

    async def _downstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Upstream to client, as is."""
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()


class KafkaProxy(CuttableProxy):
    """A cuttable proxy in front of a single Kafka broker. A Kafka client connects to the
    broker's advertised address, not to the bootstrap address it was given, so the proxy
    rewrites the advertised port in every response frame (metadata, find-coordinator): the
    host string followed by the broker's port, as a big-endian int32, becomes the same host
    followed by the proxy's port (same length, so frames keep their size). Every connection
    then goes through the proxy, and a cut is a real broker outage for the clients behind it."""

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self._advertised = target_host.encode() + struct.pack(">i", target_port)
        self._proxied = target_host.encode() + struct.pack(">i", self.port)
        self.rewrites = 0

    @property
    def bootstrap(self) -> str:
        return f"{self.target[0]}:{self.port}"

    async def _downstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
            while True:
                size = await reader.readexactly(4)
                frame = await reader.readexactly(struct.unpack(">i", size)[0])
                if self._advertised in frame:
                    self.rewrites += 1
                    frame = frame.replace(self._advertised, self._proxied)
                writer.write(size + frame)
                await writer.drain()
        writer.transport.abort()
