"""The transcoding endpoint: HTTP request -> route -> gRPC call -> {"data": ...} or the error path.

It is one Starlette route that takes every path not served by the bridge itself, matches the raw
path against the route table, and renders every failure through status.ApiError.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import grpc
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from rest_bridge.codec import Codec, DecodeError
from rest_bridge.http_rule import PathDecodeError
from rest_bridge.metadata import deadline, outbound, request_id
from rest_bridge.routes import RESERVED_PATHS, Route, RouteTable
from rest_bridge.status import JSON_TYPE, LOCAL_MESSAGES, ApiError
from rest_bridge.transcode import parse_query, to_request

log = logging.getLogger(__name__)


class Transcoder(BaseRoute):
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
    ) -> None:
        self._table, self._codec = table, codec
        self._timeout, self._max_body, self._max_in_flight = timeout, max_body_bytes, max_in_flight
        self._in_flight = 0
        # One multicallable per route, made once: the RPC is called by name with the
        # serializers of its descriptor-built message classes.
        self._calls: dict[int, grpc.aio.UnaryUnaryMultiCallable[Any, Any]] = {
            id(route): channel.unary_unary(
                route.grpc_path,
                request_serializer=route.request_class.SerializeToString,
                response_deserializer=route.response_class.FromString,
            )
            for route in table.routes
        }

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # The bridge's own paths belong to their routes, which answer 405 for other methods.
        if scope["type"] != "http" or scope["path"] in RESERVED_PATHS:
            return Match.NONE, {}
        return Match.FULL, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NotImplementedError  # pragma: no cover - never used for reverse routing

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        rid = request_id(request.headers.get("x-request-id"))
        authorization = request.headers.getlist("authorization")
        if self._in_flight >= self._max_in_flight:
            response = ApiError(
                grpc.StatusCode.UNAVAILABLE,
                "the bridge is overloaded; retry later",
                retry_after=1,
            ).to_response(bool(authorization), rid)
            await response(scope, receive, send)
            return
        self._in_flight += 1
        try:
            response = await self._respond(request, rid, authorization)
        except ApiError as err:
            response = err.to_response(bool(authorization), rid)
        finally:
            self._in_flight -= 1
        await response(scope, receive, send)

    async def _respond(self, request: Request, rid: str, authorization: list[str]) -> Response:
        method = request.method
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
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
            body = await self._body(request) if route.body else b""
            query = parse_query(request.scope.get("query_string", b""))
            message = to_request(route, self._codec, found.params, query, body)
            timeout = deadline(request.headers.get("grpc-timeout"), self._timeout)
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
                message, timeout=timeout, metadata=outbound(authorization, rid)
            )
        except grpc.RpcError as exc:
            raise ApiError.from_rpc_error(exc) from exc
        return self._ok(route, reply, rid)

    def _ok(self, route: Route, reply: Any, rid: str) -> Response:
        data = self._codec.encode(
            getattr(reply, route.response_body) if route.response_body else reply
        )
        body = json.dumps({"data": data}, ensure_ascii=False, separators=(",", ":")).encode()
        return Response(body, media_type=JSON_TYPE, headers={"X-Request-Id": rid})

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
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
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > self._max_body:
                        raise too_large
                    chunks.append(chunk)
        except TimeoutError:
            raise ApiError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"the request body did not arrive within {self._timeout:g} s",
                http_status=408,
            ) from None
        return b"".join(chunks)


def _printable(path: str) -> str:
    return (
        path
        if len(path) <= 200 and path.isprintable()
        else path[:200].encode("unicode_escape").decode()
    )
