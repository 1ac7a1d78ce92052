"""What the protocols of the edge share: its limits, connection slots, and refusing politely.

A refusal (431 for an oversized head, 503 past --max-connections) is written with
`Connection: close`, the write side is shut, and what the client still sends is read and thrown
away for a moment before the socket closes: closing with unread bytes makes the kernel send a
reset, and the client would lose the answer it is about to read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from http import HTTPStatus

from rest_bridge.config import (
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEADER_BYTES,
    KEEP_ALIVE_SECONDS,
)
from rest_bridge.envelope import JSON_TYPE
from rest_bridge.status import ApiError

DRAIN_SECONDS = 1.0
"""How long a refused connection's remaining input is read and dropped before closing."""
DRAIN_BYTES = 8 << 20
"""Input dropped at most before closing anyway (a client streaming forever)."""


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """The listener's limits (flags --max-header-bytes, --header-timeout, --max-connections)."""

    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    """The whole request head (request line and headers; an HTTP/2 header list as HPACK counts)."""
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    """Seconds from a connection's start (or a kept-alive request's first byte) to a full head."""
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    keep_alive: float = KEEP_ALIVE_SECONDS
    """Seconds an idle kept-alive connection stays open."""

    def __post_init__(self) -> None:
        if self.max_header_bytes < 1024:
            raise ValueError("--max-header-bytes must be at least 1024")
        if self.header_timeout <= 0:
            raise ValueError("--header-timeout must be positive")
        if self.max_connections < 1:
            raise ValueError("--max-connections must be at least 1")


class Gate:
    """Counts a listener's open connections, TLS handshakes and undecided ones included."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def take(self) -> Slot | None:
        """A slot for a new connection, or None when limit are open."""
        if self.open >= self.limit:
            return None
        self.open += 1
        return Slot(self)


class Slot:
    """One connection's place in its Gate; release() is idempotent."""

    __slots__ = ("_gate",)

    def __init__(self, gate: Gate | None) -> None:
        self._gate = gate

    def release(self) -> None:
        if self._gate is not None:
            self._gate.open -= 1
            self._gate = None


def refusal_bytes(error: ApiError) -> bytes:
    """A whole HTTP/1.1 response carrying error's envelope, closing the connection."""
    headers, body = error.render()
    status = error.status
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += [f"content-type: {JSON_TYPE}", f"content-length: {len(body)}", "connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Drain(asyncio.Protocol):
    """The rest of a refused connection: input dropped, closed after DRAIN_SECONDS."""

    def __init__(self, transport: asyncio.BaseTransport, slot: Slot) -> None:
        self.transport, self.slot, self.dropped = transport, slot, 0
        self.timer = asyncio.get_running_loop().call_later(DRAIN_SECONDS, transport.close)

    def data_received(self, data: bytes) -> None:
        self.dropped += len(data)
        if self.dropped > DRAIN_BYTES:
            self.transport.close()

    def eof_received(self) -> bool:
        self.transport.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.timer.cancel()
        self.slot.release()


def refuse(transport: asyncio.Transport, response: bytes, slot: Slot) -> None:
    """Write response, shut the write side, drain the input briefly, close."""
    transport.write(response)
    if transport.can_write_eof():
        transport.write_eof()
    transport.set_protocol(Drain(transport, slot))
    transport.resume_reading()
