"""HTTP/2 on the bridge's listeners (h2c with prior knowledge, h2 by ALPN), served to the ASGI app.

uvicorn speaks HTTP/1.1 only, so the edge hands a connection that opens with the HTTP/2 preface
(or negotiated h2) to this protocol: the `h2` library reads the frames, HPACK and flow control
(a request's lone HEADERS frame is read by rest_bridge.http2_inbound and a response's frames
are serialized by rest_bridge.http2_frames, h2's state moved alike in both);
this module maps each stream to one ASGI http scope, as uvicorn does for HTTP/1.1 (same path and
raw_path rules, same app, same envelopes). Limits as on HTTP/1.1: a header list over
--max-header-bytes is answered 431 with the envelope on its stream (one far over it closes the
connection in the HPACK decoder), the first request must arrive within --header-timeout, and a
connection without open streams closes after the keep-alive time with GOAWAY.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from itertools import chain
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from uvicorn.server import ServerState

from rest_bridge import http2_frames, http2_inbound
from rest_bridge.edge_io import EdgeLimits, Slot
from rest_bridge.envelope import JSON_TYPE
from rest_bridge.hpack_codec import RepeatDecoder, ResponseEncoder, cache_huffman_decoding
from rest_bridge.http2_length import LenientConnection
from rest_bridge.http2_scope import DROPPED, request_scope
from rest_bridge.http2_stream import Stream
from rest_bridge.http2_writes import Writes
from rest_bridge.status import ApiError

log = logging.getLogger(__name__)

MAX_STREAMS = 100
"""SETTINGS_MAX_CONCURRENT_STREAMS: as many requests at once per connection."""
HEADER_ENTRY_OVERHEAD = 32
"""What HPACK (RFC 7541 section 4.1) adds per header when sizing a header list."""
MALFORMED = ApiError.invalid("malformed HTTP request", http_status=400)
INTERNAL = ApiError(grpc.StatusCode.INTERNAL, "internal error")
HEAD_REQUEST = (b":method", b"HEAD")  # in a header list, even one refused: no body is read

ASGIApp = Callable[..., Any]

cache_huffman_decoding()


class Http2Protocol(asyncio.Protocol):
    def __init__(
        self,
        app: ASGIApp,
        server_state: ServerState,
        limits: EdgeLimits,
        slot: Slot,
        head_deadline: float,
    ) -> None:
        self.app, self.server_state, self.limits, self.slot = app, server_state, limits, slot
        self.loop = asyncio.get_running_loop()
        # Outbound headers are the app's (already lowercase, connection headers dropped here):
        # h2's per-header checks on them cost ~10 % of a request and can find nothing. Inbound
        # ones are checked in one pass by request_scope (h2's checks cost another ~15 %).
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
        )
        self.conn = LenientConnection(config=config)
        self.conn.encoder = ResponseEncoder()  # type: ignore[assignment]  # encode() and size
        decoder = RepeatDecoder()
        decoder.max_header_list_size = self.conn.decoder.max_header_list_size
        self.conn.decoder = decoder
        self.streams: dict[int, Stream] = {}
        self.transport: asyncio.Transport | None = None
        self.writes = Writes(self.loop)
        self.scheme = "http"
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.closing = False
        self._window = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._idle_at: float | None = head_deadline
        """When the connection closes if still without streams (None while a stream runs)."""
        self._timer: asyncio.TimerHandle | None = self.loop.call_at(head_deadline, self._idle)

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not isinstance(transport, asyncio.Transport):
            raise TypeError("HTTP/2 needs a stream transport")
        self.transport = self.writes.transport = transport
        self.server_state.connections.add(self)  # type: ignore[arg-type]
        self.scheme = "https" if transport.get_extra_info("sslcontext") else "http"
        self.client = _address(transport.get_extra_info("peername"))
        self.server = _address(transport.get_extra_info("sockname"))
        self.conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: self.limits.max_header_bytes,
            },
        )
        self.conn.initiate_connection()
        # A list twice the limit still decodes (and gets its 431); beyond that HPACK refuses it.
        self.conn.decoder.max_header_list_size = 2 * self.limits.max_header_bytes
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        self._cancel_timer()
        self.slot.release()
        for stream in self.streams.values():
            stream.reset = True
            stream.wake()
        self._window.set()
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def data_received(self, data: bytes) -> None:
        try:
            taken = http2_inbound.take_headers(self.conn, data, self._on_request)
            events = self.conn.receive_data(data[taken:]) if taken < len(data) else []
        except h2.exceptions.ProtocolError:
            self._flush()
            self._close()
            return
        for event in events:
            self._on_event(event)
        self._flush()

    # uvicorn's server calls this on its connections at graceful shutdown.
    def shutdown(self) -> None:
        self.closing = True
        self.conn.close_connection()
        self._flush()
        if not self.streams:
            self._close()

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._on_request(event.stream_id, event.headers or [], ended=False)
        elif isinstance(event, h2.events.DataReceived):
            self._on_data(event)
        elif isinstance(event, h2.events.StreamEnded):
            self._on_end(event.stream_id or 0)
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.reset = True
                stream.wake()
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._window.set()
            self._window = asyncio.Event()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._close()

    def _on_end(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None and not stream.length.complete():
            self._malformed(stream, sending=False)
        elif stream is not None:
            stream.ended, stream.abandon = True, False
            stream.wake()

    def _on_data(self, event: h2.events.DataReceived) -> None:
        stream = self.streams.get(event.stream_id or 0)
        size = event.flow_controlled_length or 0
        if stream is None or stream.body_done or stream.complete:
            self._acknowledge(event.stream_id or 0, size)
            return
        stream.chunks.append(event.data or b"")
        stream.pending += size
        stream.wake()
        if not stream.length.add(len(event.data or b"")):
            self._malformed(stream, sending=True)

    def _malformed(self, stream: Stream, sending: bool) -> None:
        """A body not of its content-length: the app reads a disconnect (its answer goes nowhere,
        nothing goes upstream); 400 answers on a fresh stream of the id, then RST if open."""
        stream.reset = True
        stream.wake()
        self._acknowledge(stream.id, stream.pending)
        stream.pending = 0
        if stream.headers_sent:  # the app answered already: only a reset can say it now
            with contextlib.suppress(h2.exceptions.StreamClosedError):  # its answer was whole
                self.conn.reset_stream(stream.id, h2.errors.ErrorCodes.PROTOCOL_ERROR)
            return
        answering = self.streams[stream.id] = Stream(stream.id)
        answering.ended = answering.body_done = True
        answering.abandon = sending
        self._spawn(answering, _answer(MALFORMED))

    def _on_request(self, stream_id: int | None, headers: list[Any], ended: bool) -> None:
        self._idle_at = None
        if stream_id is None or self.closing:
            return
        stream = Stream(stream_id)
        self.streams[stream_id] = stream
        size = HEADER_ENTRY_OVERHEAD * len(headers) + sum(map(len, chain.from_iterable(headers)))
        if size > self.limits.max_header_bytes:
            error = ApiError.invalid(
                f"request head larger than {self.limits.max_header_bytes} bytes", http_status=431
            )
            self._spawn(stream, _answer(error, HEAD_REQUEST in headers))
        elif (
            checked := request_scope(headers, self.scheme, self.client, self.server, size)
        ) is None:
            self._spawn(stream, _answer(MALFORMED, HEAD_REQUEST in headers))
        else:
            scope, stream.length.declared = checked
            self._spawn(stream, self.app, scope)
        if ended:  # the fast path's HEADERS with END_STREAM (h2 sends StreamEnded after)
            self._on_end(stream_id)

    def _spawn(self, stream: Stream, app: ASGIApp, scope: dict[str, Any] | None = None) -> None:
        task = self.loop.create_task(self._run(stream, app, scope or {"type": "http"}))
        self.server_state.tasks.add(task)
        task.add_done_callback(self.server_state.tasks.discard)

    async def _run(self, stream: Stream, app: ASGIApp, scope: dict[str, Any]) -> None:
        self.server_state.total_requests += 1
        # The coroutines themselves, not wrapped in one more each: an await fewer per message.
        receive = functools.partial(self._receive, stream)
        send = functools.partial(self._send, stream)
        try:
            await app(scope, receive, send)
        except Exception:
            log.exception("unexpected error in the ASGI app on an HTTP/2 stream")
            if stream.started is None and not stream.reset:
                await _answer(INTERNAL, scope.get("method") == "HEAD")(scope, receive, send)
        finally:
            if not stream.reset and (stream.abandon or not stream.complete) and self._open():
                self.conn.reset_stream(stream.id)  # NO_ERROR: after a whole answer, RFC 9113 8.1
                self._flush()
            if self.streams.get(stream.id) is stream:  # not the stream that answers for it
                del self.streams[stream.id]
            if not self.streams:
                if self.closing:
                    self._close()
                elif self._open():
                    self._idle_from(self.loop.time() + self.limits.keep_alive)

    async def _receive(self, stream: Stream) -> dict[str, Any]:
        while True:
            if stream.reset:
                return {"type": "http.disconnect"}
            if stream.chunks:
                body, stream.chunks = b"".join(stream.chunks), []
                self._acknowledge(stream.id, stream.pending)
                stream.pending = 0
                stream.body_done = stream.ended
                return {"type": "http.request", "body": body, "more_body": not stream.ended}
            if stream.ended and not stream.body_done:
                stream.body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await stream.wait()

    async def _send(self, stream: Stream, message: dict[str, Any]) -> None:
        if stream.reset or stream.complete or not self._open():
            return
        if message["type"] == "http.response.start":
            headers = []  # lowercase, without connection headers: copied and filtered at once
            for n, v in message.get("headers", []):
                header = (bytes(n).lower(), bytes(v))
                if header[0] not in DROPPED:
                    headers.append(header)
            stream.started = (int(message["status"]), headers)
            return
        if message["type"] != "http.response.body" or stream.started is None:
            return
        body: bytes = message.get("body", b"")
        more: bool = message.get("more_body", False)
        out = b""
        """Frames of this message not yet written: the head goes out with the first DATA."""
        if not stream.headers_sent:
            out = self._head(stream, end_stream=not body and not more)
        elif not body and not more:
            self.conn.end_stream(stream.id)
        if not body:
            stream.complete = not more
            self._flush(out)
            return
        while body:
            window = http2_frames.window(self.conn, stream.id, len(body))
            if window <= 0:
                self._flush(out)
                out = b""
                await self._window.wait()
                if stream.reset or not self._open():
                    return
                continue
            chunk, body = body[:window], body[window:]
            out += http2_frames.data(self.conn, stream.id, chunk, not body and not more)
            self._flush(out)
            out = b""
            if not self._writable.is_set():
                await self._writable.wait()
        # All written: whatever else queues frames in h2 (resets, window updates) flushes itself.
        stream.complete = not more

    def _head(self, stream: Stream, end_stream: bool) -> bytes:
        """The response head's frames (h2's own send for a 1xx status, queued in h2)."""
        if stream.started is None:
            return b""
        status, headers = stream.started
        head = [(b":status", str(status).encode())]
        head += [(n, v) for n, v in self.server_state.default_headers if n == b"date"]
        head += headers
        stream.headers_sent = True
        if status < 200:
            self.conn.send_headers(stream.id, head, end_stream=end_stream)
            return b""
        return http2_frames.response_headers(self.conn, stream.id, head, end_stream)

    # plumbing

    def _acknowledge(self, stream_id: int, size: int) -> None:
        if size and self._open():
            try:
                self.conn.acknowledge_received_data(size, stream_id)
            except h2.exceptions.ProtocolError:
                return
            self._flush()

    def _open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def _flush(self, more: bytes = b"") -> None:
        """Write what h2 has queued, then more (frames serialized by rest_bridge.http2_frames),
        held to the end of the loop's turn while other streams run (rest_bridge.http2_writes)."""
        data = self.conn.take_queued() + more
        if data and self._open():
            self.writes.write(data, gather=len(self.streams) > 1)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _idle_from(self, at: float) -> None:
        """Close at `at` unless a request comes first. One timer serves every request: it is
        moved only to fire earlier; a request only marks the connection busy (cancelling and
        making a timer per request cost ~3 % of one, and left a cancelled handle in the heap)."""
        self._idle_at = at
        if self._timer is None or self._timer.when() > at:
            self._cancel_timer()
            self._timer = self.loop.call_at(at, self._idle)

    def _idle(self) -> None:
        self._timer = None
        if self._idle_at is None:  # busy: the last stream to end sets the time again
            return
        if self._idle_at > self.loop.time():  # a request came and went since this was set
            self._timer = self.loop.call_at(self._idle_at, self._idle)
        elif not self.streams and self._open():
            self.conn.close_connection()
            self._flush()
            self._close()

    def _close(self) -> None:
        self.writes.flush()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


def _address(value: Any) -> tuple[str, int] | None:
    return (str(value[0]), int(value[1])) if isinstance(value, tuple) else None


def _answer(error: ApiError, head: bool = False) -> ASGIApp:
    """An ASGI app answering error's envelope (for requests the app never sees); to a HEAD
    request, its headers only, as the app would answer it."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers, body = error.render()
        raw = [(n.lower().encode(), v.encode()) for n, v in headers.items()]
        raw.append((b"content-type", JSON_TYPE.encode()))
        raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": error.status, "headers": raw})
        await send({"type": "http.response.body", "body": b"" if head else body})

    return app
