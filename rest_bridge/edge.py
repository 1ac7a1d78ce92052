"""The listening edge of both REST doors: every accepted connection starts here.

uvicorn creates one Acceptor per connection (it is the `http` protocol class of the config). The
Acceptor takes a slot under --max-connections (past it: 503 in the envelope, or a plain close
before a TLS handshake), runs the TLS handshake itself when TLS is on (bounded by
--header-timeout, where asyncio's default would wait 60 s), then hands the connection to
HTTP/2 (ALPN "h2", or the HTTP/2 preface on a plaintext connection: h2c with prior knowledge)
or to uvicorn's HTTP/1.1 protocol with the head limits (rest_bridge.http1).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any, ClassVar

import grpc
from uvicorn.config import Config
from uvicorn.server import ServerState

from rest_bridge.edge_io import EdgeLimits, Gate, Slot, refusal_bytes, refuse
from rest_bridge.http1 import LimitedHttpProtocol
from rest_bridge.http2 import Http2Protocol
from rest_bridge.status import ApiError

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
TOO_MANY = refusal_bytes(
    ApiError(grpc.StatusCode.UNAVAILABLE, "too many connections", retry_after=1.0)
)


class Acceptor(asyncio.Protocol):
    """A new connection until its protocol is known; see the module docstring."""

    limits: ClassVar[EdgeLimits] = EdgeLimits()
    gate: ClassVar[Gate] = Gate(EdgeLimits().max_connections)
    tls: ClassVar[ssl.SSLContext | None] = None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.config, self.server_state, self.app_state = config, server_state, app_state
        self.loop = _loop or asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.slot: Slot | None = None
        self.buffer = b""
        self.deadline = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.handshake: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not isinstance(transport, asyncio.Transport):
            raise TypeError("the edge needs a stream transport")
        self.transport = transport
        self.slot = self.gate.take()
        if self.slot is None:
            if self.tls is None:
                refuse(transport, TOO_MANY, Slot(None))
            else:
                transport.abort()
            return
        self.deadline = self.loop.time() + self.limits.header_timeout
        self.timer = self.loop.call_at(self.deadline, self._timed_out)
        if self.tls is not None:
            transport.pause_reading()
            self.handshake = self.loop.create_task(self._start_tls(transport, self.tls))

    async def _start_tls(self, transport: asyncio.Transport, context: ssl.SSLContext) -> None:
        timeout = max(0.1, self.deadline - self.loop.time())
        try:
            secured = await self.loop.start_tls(
                transport, self, context, server_side=True, ssl_handshake_timeout=timeout
            )
        except Exception:  # any handshake failure (reset, bad hello, timeout): drop the client
            transport.abort()
            self._release()
            return
        if secured is None:
            transport.abort()
            self._release()
            return
        self.transport = secured
        ssl_object = secured.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            self._hand_off(http2=True)
        elif self.buffer:
            self._decide()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.handshake is None or self.handshake.done():
            self._decide()

    def _decide(self) -> None:
        seen = min(len(self.buffer), len(PREFACE))
        if self.buffer[:seen] == PREFACE[:seen]:
            if seen < len(PREFACE):
                return  # could still be the preface: wait for more
            self._hand_off(http2=True)
        else:
            self._hand_off(http2=False)

    def _hand_off(self, http2: bool) -> None:
        transport, slot = self.transport, self.slot
        if transport is None or slot is None or transport.is_closing():
            return
        self._cancel_timer()
        self.slot = None
        inner: asyncio.Protocol
        if http2:
            app = self.config.loaded_app
            inner = Http2Protocol(app, self.server_state, self.limits, slot, self.deadline)
        else:
            inner = LimitedHttpProtocol(
                self.config,
                self.server_state,
                self.app_state,
                limits=self.limits,
                slot=slot,
                head_deadline=self.deadline,
            )
        transport.set_protocol(inner)
        inner.connection_made(transport)
        buffered, self.buffer = self.buffer, b""
        if buffered:
            inner.data_received(buffered)

    def _timed_out(self) -> None:
        self.timer = None
        if self.transport is not None and self.slot is not None:
            self.transport.abort()

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _release(self) -> None:
        self._cancel_timer()
        if self.slot is not None:
            self.slot.release()
            self.slot = None

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        if self.handshake is not None and not self.handshake.done():
            with contextlib.suppress(RuntimeError):
                self.handshake.cancel()


def edge_protocol(limits: EdgeLimits, tls: ssl.SSLContext | None) -> type[Acceptor]:
    """The Acceptor class of one listener: its own limits, connection gate and TLS context."""

    class ListenerAcceptor(Acceptor):
        pass

    ListenerAcceptor.limits = limits
    ListenerAcceptor.gate = Gate(limits.max_connections)
    ListenerAcceptor.tls = tls
    return ListenerAcceptor
