"""HTTP/1.1 on the bridge's listeners: uvicorn's httptools protocol with the edge's limits.

uvicorn reads a request head of any size and waits for it forever; this subclass counts the
bytes of each head before httptools sees them (431 in the envelope past --max-header-bytes, so
at most one read beyond the limit is ever held) and closes a connection whose head is not
complete --header-timeout seconds after the connection (or the head's first byte) arrived.
Idle keep-alive connections are uvicorn's to close (timeout_keep_alive). Unparseable requests
get the envelope too, never uvicorn's plain text.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from rest_bridge.edge_io import EdgeLimits, Slot, refusal_bytes, refuse
from rest_bridge.status import ApiError

# A request the HTTP parser cannot read never reaches the app; uvicorn would answer it in plain
# text. The status stays 400 (the request is not HTTP), the body is the envelope.
MALFORMED_BODY = b'{"error":{"code":"invalid_argument","message":"malformed HTTP request"}}'
_HEAD_END = b"\r\n\r\n"


class EnvelopeHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering unparseable requests with the JSON envelope."""

    def send_400_response(self, msg: str) -> None:
        # Overrides uvicorn's plain-text answer (HttpToolsProtocol.send_400_response).
        head = [
            b"HTTP/1.1 400 Bad Request\r\n",
            *(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers),
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(MALFORMED_BODY)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + MALFORMED_BODY)
        self.transport.close()


class LimitedHttpProtocol(EnvelopeHttpToolsProtocol):
    """One HTTP/1.1 connection under EdgeLimits; releases its connection slot when it ends."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        *,
        limits: EdgeLimits,
        slot: Slot,
        head_deadline: float,
    ) -> None:
        super().__init__(config, server_state, app_state)
        self.limits, self.slot = limits, slot
        self._head_deadline = head_deadline
        """loop.time() by which the current head must be complete."""
        self._head_open = True
        self._head_bytes = 0
        self._tail = b""
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = self.loop.call_at(self._head_deadline, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self.slot.release()
        super().connection_lost(exc)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._head_open and not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self._head_open:
            if self._head_timer is None:
                # The first bytes of the next head on a kept-alive connection start its clock.
                self._head_timer = self.loop.call_later(
                    self.limits.header_timeout, self._head_timed_out
                )
            window = self._tail + data
            end = window.find(_HEAD_END)
            grown = len(data) if end < 0 else end + len(_HEAD_END) - len(self._tail)
            if self._head_bytes + grown > self.limits.max_header_bytes:
                self._refuse_head()
                return
            self._head_bytes += grown
            self._tail = window[-(len(_HEAD_END) - 1) :]
        super().data_received(data)

    def _refuse_head(self) -> None:
        self._cancel_head_timer()
        self.connections.discard(self)
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # a response is still being written: no second one
            return
        error = ApiError.invalid(
            f"request head larger than {self.limits.max_header_bytes} bytes", http_status=431
        )
        refuse(self.transport, refusal_bytes(error), self.slot)

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._head_bytes = 0
        self._tail = b""
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_open = True
