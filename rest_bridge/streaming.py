"""Server-streaming methods over HTTP, for any method with an HTTP rule: SSE or NDJSON.

`Accept: text/event-stream` gets Server-Sent Events, one event per message: `id:` the message's
`resume_token` field when it has one, `event:` its `type` field (the JSON name) when it has one,
`data:` `{"data": ...}`; a comment line every `heartbeat` seconds keeps proxies from closing an
idle stream; `Last-Event-ID` on a reconnect becomes the request's `resume_token`. Otherwise the
answer is NDJSON, one `{"data": ...}` per line.

Until the first message (or the server's response headers) arrives, a failure is the usual HTTP
error with the envelope; after it, a last SSE `event: error` (or NDJSON line) `{"error": ...}`
ends the stream. A client that disconnects cancels the upstream call at once; one that reads too
slowly is cut off with `resource_exhausted` once BUFFER_MESSAGES messages wait for it. The
unary `--timeout` does not apply; `Grpc-Timeout`, when sent, is the stream's deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message
from starlette.types import Receive, Scope, Send

from rest_bridge.codec import Codec
from rest_bridge.envelope import dumps
from rest_bridge.metadata import deadline
from rest_bridge.routes import Route
from rest_bridge.status import LOCAL_MESSAGES, ApiError

SSE_TYPE = "text/event-stream"
NDJSON_TYPE = "application/x-ndjson"
BUFFER_MESSAGES = 256
"""Messages held for a slow client before it is cut off."""
RESUME_FIELD, TYPE_FIELD = "resume_token", "type"
_EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]  # the stubs lack it
_HEARTBEAT = b": heartbeat\n\n"


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """A streaming call ready to start: what the transcoder hands over instead of a body."""

    route: Route
    message: Message
    timeout: float | None
    metadata: tuple[tuple[str, str], ...]
    sse: bool


def plan(
    route: Route, message: Message, scope: Scope, metadata: tuple[tuple[str, str], ...]
) -> StreamPlan:
    """The streaming call a request asks for (Accept, Last-Event-ID and Grpc-Timeout applied).

    Raises:
        DecodeError: Grpc-Timeout is malformed.
        ApiError: Grpc-Timeout has already expired.
    """
    accept = last_event_id = grpc_timeout = None
    for name, value in scope["headers"]:
        if name == b"accept":
            accept = value.decode("latin-1")
        elif name == b"last-event-id":
            last_event_id = value.decode("latin-1")
        elif name == b"grpc-timeout":
            grpc_timeout = value.decode("latin-1")
    field = message.DESCRIPTOR.fields_by_name.get(RESUME_FIELD)
    if last_event_id and field is not None and field.type == field.TYPE_STRING:
        setattr(message, RESUME_FIELD, last_event_id)  # the browser's reconnect wins
    timeout = None if grpc_timeout is None else deadline(grpc_timeout, math.inf)
    if timeout is not None and timeout <= 0:
        code = grpc.StatusCode.DEADLINE_EXCEEDED
        raise ApiError(code, LOCAL_MESSAGES[code])
    return StreamPlan(route, message, timeout, metadata, SSE_TYPE in (accept or ""))


class Streamer:
    def __init__(self, codec: Codec, heartbeat: float) -> None:
        self._codec, self._heartbeat = codec, heartbeat

    async def serve(  # noqa: PLR0917 (the ASGI pair and what the transcoder knows)
        self,
        start: Callable[..., Any],
        stream: StreamPlan,
        receive: Receive,
        send: Send,
        rid: str,
        token_given: bool,
    ) -> None:
        """Run the call `start` makes and write its messages as they come."""
        call = start(stream.message, timeout=stream.timeout, metadata=stream.metadata)
        gone = asyncio.create_task(_disconnected(receive))
        try:
            first, pending = await _first(call, gone)
        except grpc.RpcError as exc:
            call.cancel()
            gone.cancel()
            await _send_error(send, ApiError.from_rpc_error(exc), token_given, rid)
            return
        if first is None:  # the client went away first
            call.cancel()
            return
        content_type = SSE_TYPE if stream.sse else NDJSON_TYPE
        headers = [
            (b"content-type", content_type.encode()),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
            (b"x-request-id", rid.encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        queue: asyncio.Queue[Any] = asyncio.Queue()
        if first is not _ACCEPTED:
            queue.put_nowait(first)  # a message, or _EOF for a stream without one
        reader = None if first is _EOF else asyncio.create_task(_pump(call, queue, pending))
        try:
            await self._write(stream, queue, gone, send, token_given, rid)
        finally:
            call.cancel()
            gone.cancel()
            if reader is not None:
                reader.cancel()
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _write(  # noqa: PLR0917
        self,
        stream: StreamPlan,
        queue: asyncio.Queue[Any],
        gone: asyncio.Task[None],
        send: Send,
        token_given: bool,
        rid: str,
    ) -> None:
        beat = self._heartbeat if stream.sse and self._heartbeat > 0 else None
        while True:
            getting = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait(
                {getting, gone}, timeout=beat, return_when=asyncio.FIRST_COMPLETED
            )
            if gone in done:
                getting.cancel()
                return
            if getting not in done:
                getting.cancel()
                await send({"type": "http.response.body", "body": _HEARTBEAT, "more_body": True})
                continue
            item = getting.result()
            if item is _EOF:
                return
            if item is _OVERFLOW:
                item = ApiError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"the client read too slowly: more than {BUFFER_MESSAGES} messages waited",
                )
            if isinstance(item, ApiError):
                await send(
                    {
                        "type": "http.response.body",
                        "body": _error_frame(item, stream.sse, token_given, rid),
                        "more_body": True,
                    }
                )
                return
            body = self._frame(stream, item)
            await send({"type": "http.response.body", "body": body, "more_body": True})

    def _frame(self, stream: StreamPlan, reply: Message) -> bytes:
        route = stream.route
        data = self._codec.encode(
            getattr(reply, route.response_body) if route.response_body else reply
        )
        body = dumps({"data": data})
        if not stream.sse:
            return body + b"\n"
        lines = []
        fields = reply.DESCRIPTOR.fields_by_name
        if RESUME_FIELD in fields:
            token = getattr(reply, RESUME_FIELD)
            if isinstance(token, str) and token and token.isprintable():
                lines.append(f"id: {token}\n".encode())
        if TYPE_FIELD in fields:
            whole = self._codec.encode(reply) if route.response_body else data
            kind = whole.get(TYPE_FIELD) if isinstance(whole, dict) else None
            if isinstance(kind, str) and kind.isprintable():
                lines.append(f"event: {kind}\n".encode())
        lines.append(b"data: " + body + b"\n\n")
        return b"".join(lines)


class _Accepted:
    """The server sent its response headers before any message: the call was accepted."""


_ACCEPTED: Any = _Accepted()
_OVERFLOW: Any = object()
"""What the pump queues when the client fell BUFFER_MESSAGES behind (it stops reading then)."""


async def _first(call: Any, gone: asyncio.Task[None]) -> tuple[Any, asyncio.Future[Any] | None]:
    """The first message or _EOF; _ACCEPTED and the read under way when the server's headers
    came first; None when the client went away.

    Raises:
        grpc.RpcError: the call failed before any message.
    """
    reading = asyncio.ensure_future(call.read())
    headers = asyncio.ensure_future(call.initial_metadata())
    try:
        done, _ = await asyncio.wait({reading, headers, gone}, return_when=asyncio.FIRST_COMPLETED)
        if reading in done:
            return reading.result(), None
        if gone in done:
            reading.cancel()
            return None, None
        if headers.result():  # non-empty: sent on purpose, ahead of the first message
            return _ACCEPTED, reading
        return await reading, None  # an empty header block ends a call that failed at once
    finally:
        headers.cancel()


async def _pump(call: Any, queue: asyncio.Queue[Any], pending: asyncio.Future[Any] | None) -> None:
    """Move every message of the call into queue, then _EOF or the call's error; stop and cancel
    the call when BUFFER_MESSAGES wait, so a slow client holds a bounded buffer."""
    try:
        while True:
            item = await (pending if pending is not None else call.read())
            pending = None
            if queue.qsize() >= BUFFER_MESSAGES:
                queue.put_nowait(_OVERFLOW)
                call.cancel()
                return
            queue.put_nowait(item)
            if item is _EOF:
                return
    except grpc.RpcError as exc:
        queue.put_nowait(ApiError.from_rpc_error(exc))


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _error_frame(error: ApiError, sse: bool, token_given: bool, rid: str) -> bytes:
    _, body = error.render(token_given, rid)
    return b"event: error\ndata: " + body + b"\n\n" if sse else body + b"\n"


async def _send_error(send: Send, error: ApiError, token_given: bool, rid: str) -> None:
    headers, body = error.render(token_given, rid)
    raw = [(name.lower().encode(), value.encode("latin-1")) for name, value in headers.items()]
    raw += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": error.status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
