"""An Http2Protocol driven in memory from raw bytes, with its fast path on or off.

Shared by tests/rest_bridge/test_http2_inbound.py and the `http2` fuzz target: both feed the
same bytes to a protocol that reads request HEADERS frames itself (rest_bridge.http2_inbound)
and to one that leaves every frame to h2, and require the same outcome.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import h2.config
import h2.connection
import hpack
from uvicorn.server import ServerState

from rest_bridge import http2, http2_inbound
from rest_bridge.edge_io import EdgeLimits, Gate

Outcome = tuple[bytes, bool, list[tuple[str, bytes]]]
"""What one protocol did with its input: bytes out, closed, (path, body) per request seen."""


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5), "sockname": ("127.0.0.1", 80)}.get(name, default)


def frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    size = len(payload)
    return struct.pack(">HBBBL", size >> 8, size & 0xFF, kind, flags, stream_id) + payload


def client_start() -> bytes:
    """A client's preface and SETTINGS, as h2 writes them."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
    client.initiate_connection()
    return client.data_to_send()


class Blocks:
    """Header blocks from one HPACK encoder, in the order they are put on the wire."""

    def __init__(self) -> None:
        self.encoder = hpack.Encoder()

    def request(self, path: str, method: str = "GET") -> bytes:
        headers = [(":method", method), (":scheme", "http"), (":authority", "x"), (":path", path)]
        return bytes(self.encoder.encode([*headers, ("user-agent", "test")]))


async def read_body(receive: Any) -> bytes | None:
    """An ASGI request's whole body, or None when the client went away before its end."""
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


async def _echo(seen: list[tuple[str, bytes]], scope: Any, receive: Any, send: Any) -> None:
    body = await read_body(receive)
    if body is None:
        return
    seen.append((scope["path"], body))
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": scope["path"].encode() + body})


async def serve(chunks: list[bytes], fast: bool) -> tuple[Outcome, int]:
    """The outcome of chunks (one read each), and how many requests the fast path read."""
    seen: list[tuple[str, bytes]] = []
    taken = 0
    state = ServerState()
    slot = Gate(10).take()
    if slot is None:
        raise RuntimeError("no connection slot")
    loop = asyncio.get_running_loop()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await _echo(seen, scope, receive, send)

    protocol = http2.Http2Protocol(app, state, EdgeLimits(), slot, loop.time() + 60)
    transport = Transport()
    protocol.connection_made(transport)
    original = http2_inbound.take_headers

    def counted(conn: Any, data: bytes, on_request: Any) -> int:
        def handed(*request: Any) -> None:
            nonlocal taken
            taken += 1
            on_request(*request)

        return original(conn, data, handed) if fast else 0  # not fast: h2 reads everything

    try:
        http2_inbound.take_headers = counted
        for chunk in chunks:
            if transport.closed:
                break
            protocol.data_received(chunk)
            for _ in range(8):
                await asyncio.sleep(0)
    finally:
        http2_inbound.take_headers = original
    for task in list(state.tasks):
        task.cancel()
    protocol.connection_lost(None)
    return (bytes(transport.written), transport.closed, seen), taken


def differences(fast: Outcome, slow: Outcome) -> str | None:
    """How the fast path's outcome differs from h2's beyond the one difference allowed (None:
    it does not). Allowed: h2 drops every request of a read that ends in a connection error,
    where the fast path has already handed the ones before the bad frame to the app; the
    connection closes either way (its GOAWAY names the last stream opened, which the client
    must take as possibly processed), so nothing is answered in either."""
    if fast[:2] != slow[:2]:
        return f"bytes out or close differ: {fast[:2]!r} != {slow[:2]!r}"
    if fast[2] != slow[2] and not (fast[1] and fast[2][: len(slow[2])] == slow[2]):
        return f"requests differ: {fast[2]!r} != {slow[2]!r}"
    return None


def both(chunks: list[bytes]) -> int:
    """A client's preface and settings, then chunks, to both protocols; raises AssertionError
    when their outcomes differ. Returns how many requests the fast path read."""
    chunks = [client_start(), *chunks]

    async def run() -> int:
        (fast, taken), (slow, _) = await serve(chunks, True), await serve(chunks, False)
        found = differences(fast, slow)
        if found is not None:
            raise AssertionError(found)
        return taken

    return asyncio.run(run())
