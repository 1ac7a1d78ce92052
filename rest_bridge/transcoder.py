"""The transcoding endpoint: HTTP request -> route -> gRPC call -> {"data": ...} or the error path.

A plain ASGI callable, reached straight from the bridge's entry point (rest_bridge.app) for
every path the bridge does not serve itself: no framework routing, middleware or dependency
injection per request (that was most of the bridge's own cost in `make bench` profiles). It
matches the raw path against the route table and renders every failure through
status.ApiError, so its answers follow the same table as the framework's handlers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
from starlette.types import Message, Receive, Scope, Send

from rest_bridge.codec import Codec, DecodeError
from rest_bridge.envelope import JSON_TYPE, data_body
from rest_bridge.http_rule import PathDecodeError
from rest_bridge.metadata import deadline, outbound, request_id
from rest_bridge.request_mapping import parse_query, to_request
from rest_bridge.routes import RouteTable
from rest_bridge.status import LOCAL_MESSAGES, ApiError
from rest_bridge.streaming import Streamer, StreamPlan, plan

log = logging.getLogger(__name__)

_JSON_HEADER = (b"content-type", JSON_TYPE.encode())


class _Request:
    """What the transcoder needs from the ASGI scope, read in one pass over the headers."""

    __slots__ = ("authorization", "content_length", "grpc_timeout", "request_id")

    def __init__(self, scope: Scope) -> None:
        self.authorization: list[str] = []
        self.request_id: str | None = None
        self.grpc_timeout: str | None = None
        self.content_length: str | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                self.authorization.append(value.decode("latin-1"))
            elif name == b"x-request-id":
                self.request_id = value.decode("latin-1")
            elif name == b"grpc-timeout":
                self.grpc_timeout = value.decode("latin-1")
            elif name == b"content-length":
                self.content_length = value.decode("latin-1")


class Transcoder:
    """Serves every route of the table; answers 404/405 itself for paths it does not know."""

    def __init__(
        self,
        table: RouteTable,
        *,
        channel: grpc.aio.Channel,
        codec: Codec,
        timeout: float,
        max_body_bytes: int,
        max_in_flight: int,
        heartbeat: float = 15.0,
    ) -> None:
        self._table, self._codec = table, codec
        self._timeout, self._max_body, self._max_in_flight = timeout, max_body_bytes, max_in_flight
        self._in_flight = 0
        # One multicallable per route, made once: the RPC is called by name with the
        # serializers of its descriptor-built message classes.
        self._calls: dict[int, Any] = {
            id(route): (
                channel.unary_stream if route.rpc.server_streaming else channel.unary_unary
            )(
                route.grpc_path,
                request_serializer=route.request_class.SerializeToString,
                response_deserializer=route.response_class.FromString,
            )
            for route in table.routes
        }
        self._streamer = Streamer(codec, heartbeat)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = _Request(scope)
        rid = request_id(request.request_id)
        token_given = bool(request.authorization)
        if self._in_flight >= self._max_in_flight:
            error = ApiError(
                grpc.StatusCode.UNAVAILABLE, "the bridge is overloaded; retry later", retry_after=1
            )
            await _send_error(send, error, token_given, rid)
            return
        self._in_flight += 1
        try:
            body = await self._respond(scope, receive, request, rid)
        except ApiError as err:
            await _send_error(send, err, token_given, rid)
            return
        except Exception:
            log.exception("unexpected error in the bridge (request id %s)", rid)
            error = ApiError(grpc.StatusCode.INTERNAL, LOCAL_MESSAGES[grpc.StatusCode.INTERNAL])
            await _send_error(send, error, token_given, rid)
            return
        finally:
            self._in_flight -= 1
        if isinstance(body, StreamPlan):  # streams are not counted in --max-in-flight
            start = self._calls[id(body.route)]
            await self._streamer.serve(start, body, receive, send, rid, token_given)
            return
        await _send(send, 200, [(b"x-request-id", rid.encode())], body)

    async def _respond(
        self, scope: Scope, receive: Receive, request: _Request, rid: str
    ) -> bytes | StreamPlan:
        method: str = scope["method"]
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1")
        try:
            found = self._table.match(method, path)
            if found is None:
                raise ApiError(
                    grpc.StatusCode.NOT_FOUND, f"no route for {method} {_printable(path)}"
                )
            if isinstance(found, list):
                raise ApiError(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"method {method} is not allowed on {_printable(path)}; "
                    f"allowed: {', '.join(found)}",
                    http_status=405,
                    headers={"Allow": ", ".join(found)},
                )
            route = found.route
            body = await self._body(receive, request) if route.body else b""
            query = parse_query(scope.get("query_string", b""))
            message = to_request(route, self._codec, found.params, query, body)
            if route.rpc.server_streaming:
                return plan(route, message, scope, outbound(request.authorization, rid))
            timeout = deadline(request.grpc_timeout, self._timeout)
            if timeout <= 0:
                # grpcio may still deliver a fast answer for a zero deadline; it has expired.
                code = grpc.StatusCode.DEADLINE_EXCEEDED
                raise ApiError(code, LOCAL_MESSAGES[code])
        except DecodeError as exc:
            raise ApiError.from_decode_error(exc) from exc
        except PathDecodeError as exc:
            raise ApiError.invalid(str(exc), exc.field) from exc
        try:
            reply = await self._calls[id(route)](
                message, timeout=timeout, metadata=outbound(request.authorization, rid)
            )
        except grpc.RpcError as exc:
            raise ApiError.from_rpc_error(exc) from exc
        data = self._codec.encode(
            getattr(reply, route.response_body) if route.response_body else reply
        )
        return data_body(data)

    async def _body(self, receive: Receive, request: _Request) -> bytes:
        declared = request.content_length
        too_large = ApiError.invalid(
            f"request body is larger than the limit of {self._max_body} bytes", http_status=413
        )
        if declared is not None and declared.isdigit() and int(declared) > self._max_body:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        try:
            # A client that never finishes its body must not hold a slot forever.
            async with asyncio.timeout(self._timeout):
                while True:
                    message: Message = await receive()
                    if message["type"] == "http.disconnect":
                        raise ApiError(grpc.StatusCode.CANCELLED, "the client went away")
                    chunk: bytes = message.get("body", b"")
                    size += len(chunk)
                    if size > self._max_body:
                        raise too_large
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            raise ApiError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"the request body did not arrive within {self._timeout:g} s",
                http_status=408,
            ) from None
        return b"".join(chunks)


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers.append(_JSON_HEADER)
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Send, error: ApiError, token_given: bool, rid: str) -> None:
    headers, body = error.render(token_given, rid)
    raw = [(name.lower().encode(), value.encode("latin-1")) for name, value in headers.items()]
    await _send(send, error.status, raw, body)


def _multicallable(channel: grpc.aio.Channel, streaming: bool) -> Any:
    return channel.unary_stream if streaming else channel.unary_unary


def _printable(path: str) -> str:
    return (
        path
        if len(path) <= 200 and path.isprintable()
        else path[:200].encode("unicode_escape").decode()
    )
