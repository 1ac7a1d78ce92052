"""An HTTP/2 connection's writes gathered per turn of the event loop while several streams run.

Each answer left with a transport.write of its own: a send system call per answer (on
loopback the receiver's TCP work is charged to that call too). With several streams in flight on
one connection (a multiplexing client), answers that finish in the same turn of the loop now
leave in one write at the end of that turn. With one stream open (a client sending one request
at a time) a write still goes out at once, so no answer waits for a turn it has no need of.
"""

from __future__ import annotations

import asyncio


class Writes:
    """One connection's outgoing bytes: written at once, or gathered until the turn ends."""

    __slots__ = ("_loop", "_pending", "_scheduled", "transport")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: list[bytes] = []
        self._scheduled = False
        self.transport: asyncio.Transport | None = None

    def write(self, data: bytes, gather: bool) -> None:
        """Write data, after anything gathered; gather: hold it for the end of this turn."""
        if not gather and not self._pending:
            if self.transport is not None:
                self.transport.write(data)
            return
        self._pending.append(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write what is gathered now (at the end of a turn, and before the connection closes)."""
        self._scheduled = False
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(data)
