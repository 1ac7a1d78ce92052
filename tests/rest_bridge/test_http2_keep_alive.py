"""The HTTP/2 keep-alive time over real sockets: one timer per connection, moved by requests.

rest_bridge.http2 keeps a single timer per connection and lets requests only mark the
connection busy (no timer made and cancelled per request). These tests hold it to what the
per-request timer did: a connection whose requests keep coming, or whose stream runs longer
than the keep-alive time, stays open; once idle it gets GOAWAY and is closed, at the keep-alive
time after its last answer even when the first request's header deadline is much later.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
from uvicorn.server import ServerState

from rest_bridge.edge_io import EdgeLimits, Gate
from rest_bridge.http2 import Http2Protocol

pytestmark = pytest.mark.anyio

KEEP_ALIVE = 0.5
SLOW = 2 * KEEP_ALIVE
"""How long the app takes on /slow: longer than the keep-alive time."""


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    if scope["path"] == "/slow":
        await asyncio.sleep(SLOW)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@asynccontextmanager
async def listening(head_timeout: float) -> AsyncIterator[int]:
    """A listener on 127.0.0.1 serving app over HTTP/2 only; its port."""
    loop = asyncio.get_running_loop()
    state, gate, limits = ServerState(), Gate(10), EdgeLimits(keep_alive=KEEP_ALIVE)

    def protocol() -> Http2Protocol:
        slot = gate.take()
        if slot is None:
            raise RuntimeError("no connection slot left")
        return Http2Protocol(app, state, limits, slot, loop.time() + head_timeout)

    server = await loop.create_server(protocol, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def connected(port: int) -> AsyncIterator[Client]:
    """A client connected to port, its socket closed after."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield Client(reader, writer)
    finally:
        writer.close()
        await writer.wait_closed()


class Client:
    """An h2 client on a real connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        self.events: list[h2.events.Event] = []
        self._send()

    def _send(self) -> None:
        self.writer.write(self.conn.data_to_send())

    async def _read(self) -> bool:
        """Read once and take in the events; False at end of stream."""
        data = await asyncio.wait_for(self.reader.read(65536), 10)
        if not data:
            return False
        self.events += self.conn.receive_data(data)
        self._send()
        return True

    async def get(self, path: bytes) -> int:
        """The status of a GET of path (raises if the connection ends first)."""
        stream = self.conn.get_next_available_stream_id()
        headers = [(b":method", b"GET"), (b":path", path), (b":scheme", b"http")]
        self.conn.send_headers(stream, [*headers, (b":authority", b"x")], end_stream=True)
        self._send()
        while not any(
            isinstance(e, h2.events.StreamEnded) and e.stream_id == stream for e in self.events
        ):
            if not await self._read():
                raise ConnectionError(f"closed before the answer to {path!r}")
        for event in self.events:
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream:
                return int(dict(event.headers or [])[b":status"])
        raise AssertionError("no response head")

    async def wait_closed(self) -> None:
        """Until the server closes the connection (10 s at most a read)."""
        while await self._read():
            pass

    def terminated(self) -> bool:
        return any(isinstance(e, h2.events.ConnectionTerminated) for e in self.events)


async def test_a_busy_connection_stays_open_and_closes_once_idle() -> None:
    """Requests closer together than the keep-alive time, for several times it, and then a
    stream that runs longer than it: the connection serves them all, then closes with GOAWAY."""
    async with listening(head_timeout=60) as port, connected(port) as client:
        for _ in range(20):  # 1 s of requests, 0.05 s apart (keep-alive 0.5 s)
            assert await client.get(b"/x") == 200
            await asyncio.sleep(KEEP_ALIVE / 10)
        assert await client.get(b"/slow") == 200
        assert not client.terminated()
        await client.wait_closed()
        assert client.terminated()


async def test_an_idle_connection_closes_at_the_keep_alive_time_before_the_head_deadline() -> None:
    """After its first answer, a connection whose header deadline is a minute away is closed
    at the keep-alive time, not at that deadline."""
    async with listening(head_timeout=60) as port, connected(port) as client:
        assert await client.get(b"/x") == 200
        await client.wait_closed()
        assert client.terminated()


async def test_a_connection_without_requests_closes_at_the_head_deadline() -> None:
    """No request at all: closed at the header deadline, as before any keep-alive applies."""
    async with listening(head_timeout=0.2) as port, connected(port) as client:
        await client.wait_closed()
        assert client.terminated()
