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
from collections.abc import Callable
from typing import Any, NamedTuple

import grpc
from starlette.types import Message, Receive, Scope, Send

from rest_bridge import idempotency
from rest_bridge.access_log import ROUTE_KEY
from rest_bridge.codec import Codec, DecodeError
from rest_bridge.compression import body_decoder, too_large
from rest_bridge.conditional import Conditions, etag_header, resource_etag
from rest_bridge.descriptors import descriptor_of
from rest_bridge.envelope import JSON_TYPE, data_body
from rest_bridge.head import method_sent
from rest_bridge.http_rule import PathDecodeError
from rest_bridge.live_schema import LiveSchema
from rest_bridge.metadata import deadline, outbound, request_id
from rest_bridge.request_mapping import parse_query, to_request
from rest_bridge.status import LOCAL_MESSAGES, ApiError
from rest_bridge.streaming import Streamer, StreamPlan
from rest_bridge.streaming import plan as stream_plan
from rest_bridge.system_params import split_system

log = logging.getLogger(__name__)

_JSON_HEADER = (b"content-type", JSON_TYPE.encode())
_REPLAYED_HEADER = (idempotency.REPLAYED_HEADER.lower().encode(), b"true")


class _Request:
    """What the transcoder needs from the ASGI scope, read in one pass over the headers."""

    __slots__ = (
        "authorization",
        "content_encoding",
        "content_length",
        "grpc_timeout",
        "idempotency_key",
        "if_match",
        "if_none_match",
        "request_id",
    )

    def __init__(self, scope: Scope) -> None:
        self.authorization: list[str] = []
        self.request_id: str | None = None
        self.grpc_timeout: str | None = None
        self.content_length: str | None = None
        self.content_encoding: str | None = None
        self.if_match: str | None = None
        self.if_none_match: str | None = None
        self.idempotency_key: list[str] = []
        for name, value in scope["headers"]:
            if name == b"authorization":
                self.authorization.append(value.decode("latin-1"))
            elif name == b"x-request-id":
                self.request_id = value.decode("latin-1")
            elif name == b"grpc-timeout":
                self.grpc_timeout = value.decode("latin-1")
            elif name == b"content-length":
                self.content_length = value.decode("latin-1")
            elif name == b"content-encoding":
                self.content_encoding = value.decode("latin-1")
            elif name == b"if-match":
                self.if_match = _joined(self.if_match, value)
            elif name == b"if-none-match":
                self.if_none_match = _joined(self.if_none_match, value)
            elif name == b"idempotency-key":
                self.idempotency_key.append(value.decode("latin-1"))


class _Stream(NamedTuple):
    """A server-streaming call to start, and the multicallable that starts it."""

    plan: StreamPlan
    start: Callable[..., Any]


class Transcoder:
    """Serves every route of the table; answers 404/405 itself for paths it does not know."""

    def __init__(
        self,
        live: LiveSchema,
        *,
        codec: Codec,
        timeout: float,
        max_body_bytes: int,
        max_in_flight: int,
        heartbeat: float = 15.0,
    ) -> None:
        self._live, self._codec = live, codec
        self._number_codec = Codec(enums_as_numbers=True)
        self._timeout, self._max_body, self._max_in_flight = timeout, max_body_bytes, max_in_flight
        self._in_flight = 0
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
            answer = await self._respond(scope, receive, request, rid)
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
        if isinstance(answer, _Stream):  # streams are not counted in --max-in-flight
            await self._streamer.serve(answer.start, answer.plan, receive, send, rid, token_given)
            return
        status, headers, body = answer
        headers.append((b"x-request-id", rid.encode()))
        await _send(send, status, headers, body)

    async def _respond(
        self, scope: Scope, receive: Receive, request: _Request, rid: str
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes] | _Stream:
        """Status, headers and body of a successful answer (200, or 304 with no body), or the
        stream to start for a server-streaming route."""
        # Read once: a schema swapped in meanwhile does not change this request's routes.
        served = self._live.current
        if served is None:
            raise ApiError(
                grpc.StatusCode.UNAVAILABLE,
                "the bridge has no schema loaded yet; retry later",
                retry_after=1,
            )
        method: str = scope["method"]
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1")
        try:
            found = served.table.match(method, path)
            if found is None:
                raise ApiError(
                    grpc.StatusCode.NOT_FOUND,
                    f"no route for {method_sent(scope)} {_printable(path)}",
                )
            if isinstance(found, list):
                raise ApiError(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"method {method_sent(scope)} is not allowed on {_printable(path)}; "
                    f"allowed: {', '.join(found)}",
                    http_status=405,
                    headers={"Allow": ", ".join(found)},
                )
            route = found.route
            scope[ROUTE_KEY] = route.template.source  # the metrics' and access log's route
            body = await self._body(receive, request) if route.body else b""
            system, query = split_system(parse_query(scope.get("query_string", b"")))
            message = to_request(route, self._codec, found.params, query, body)
            if route.rpc.server_streaming:
                stream = stream_plan(route, message, scope, outbound(request.authorization, rid))
                return _Stream(stream, served.calls[id(route)])
            plan = served.plans[id(route)]
            conditions = Conditions.parse(request.if_match, request.if_none_match)
            if conditions is not None:
                conditions = conditions.apply(route, plan, message)
            keyed = idempotency.apply_key(route, message, request.idempotency_key)
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
            call = served.calls[id(route)](
                message, timeout=timeout, metadata=outbound(request.authorization, rid)
            )
            reply = await call
            replayed = keyed and idempotency.replayed(await call.trailing_metadata())
        except grpc.RpcError as exc:
            error = ApiError.from_rpc_error(exc)
            raise (conditions.upstream_error(error) if conditions else error) from exc
        resource = getattr(reply, route.response_body) if route.response_body else reply
        etag = resource_etag(plan, resource)
        headers = etag_header(etag)
        if replayed:
            headers.append(_REPLAYED_HEADER)
        if conditions is not None and plan.resource and conditions.not_modified(etag):
            return 304, headers, b""
        codec = self._number_codec if system.enums_as_numbers else self._codec
        float_free = codec.float_free(descriptor_of(resource))
        return 200, headers, data_body(codec.encode(resource), float_free)

    async def _body(self, receive: Receive, request: _Request) -> bytes:
        declared = request.content_length
        # isascii: str.isdigit() is true for "²", which int() refuses (found by the app fuzzer).
        if (
            declared
            and declared.isascii()
            and declared.isdigit()
            and int(declared) > self._max_body
        ):
            raise too_large(self._max_body)
        decoder = body_decoder(request.content_encoding, self._max_body)
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
                        raise too_large(self._max_body)
                    chunks.append(decoder.feed(chunk))
                    if not message.get("more_body", False):
                        break
                decoder.finish()
        except TimeoutError:
            raise ApiError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"the request body did not arrive within {self._timeout:g} s",
                http_status=408,
            ) from None
        return b"".join(chunks)


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    if status != 304:  # a 304 has no body, so neither its type nor its length (RFC 9110 §15.4.5)
        headers.append(_JSON_HEADER)
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Send, error: ApiError, token_given: bool, rid: str) -> None:
    headers, body = error.render(token_given, rid)
    raw = [(name.lower().encode(), value.encode("latin-1")) for name, value in headers.items()]
    await _send(send, error.status, raw, body)


def _joined(current: str | None, value: bytes) -> str:
    """Several fields of one header are one comma-separated list (RFC 9110 §5.3)."""
    text = value.decode("latin-1")
    return text if current is None else f"{current}, {text}"


def _printable(path: str) -> str:
    return (
        path
        if len(path) <= 200 and path.isprintable()
        else path[:200].encode("unicode_escape").decode()
    )
