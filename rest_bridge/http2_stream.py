"""One HTTP/2 request's state on the bridge's protocol (rest_bridge.http2), kept cheap to make.

A stream is made for every request, so its cost counts per request: slots instead of a dict,
and its asyncio.Event made only when the app's receive first has to wait (an Event and its
deque were made for every stream, although most requests arrive whole and their receive
never waits). The Event was cleared before every wait and the state checked after every
wake-up, so a wake-up before the Event exists, with nobody waiting, had nothing to deliver.
"""

from __future__ import annotations

import asyncio

from rest_bridge.http2_length import BodyLength


class Stream:
    """One request: its body as it arrives, and whether the client still wants the answer."""

    __slots__ = (
        "_event",
        "abandon",
        "body_done",
        "chunks",
        "complete",
        "ended",
        "headers_sent",
        "id",
        "length",
        "pending",
        "reset",
        "started",
    )

    def __init__(self, stream_id: int) -> None:
        self.id = stream_id
        self.chunks: list[bytes] = []
        self.pending = 0
        """Flow-controlled bytes received but not yet handed to the app (acknowledged then)."""
        self.ended = False
        self.body_done = False
        self.reset = False
        self.started: tuple[int, list[tuple[bytes, bytes]]] | None = None
        """The response's status and headers (lowercase, connection headers dropped)."""
        self.headers_sent = False
        self.complete = False
        self.length = BodyLength(None)
        self.abandon = False
        """Answered while the client still sends its body (which it may stop: RST NO_ERROR)."""
        self._event: asyncio.Event | None = None

    def wake(self) -> None:
        """Something changed (body, end, reset): let a waiting receive look again."""
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        """Until the next wake (the caller checks the state before and after)."""
        if self._event is None:
            self._event = asyncio.Event()
        self._event.clear()
        await self._event.wait()
