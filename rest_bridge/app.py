"""Assemble the bridge: routes from descriptors, the transcoder, probes, OpenAPI, error handlers."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from fastapi import FastAPI
from grpc_health.v1 import health_pb2
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from rest_bridge import docs_ui, handlers
from rest_bridge.codec import Codec
from rest_bridge.config import BridgeConfig
from rest_bridge.descriptor_set import Schema
from rest_bridge.envelope import JSON_TYPE, data_body
from rest_bridge.http_observer import HttpObserver
from rest_bridge.layers import http_layers
from rest_bridge.live_schema import LiveSchema
from rest_bridge.metadata import request_id
from rest_bridge.metrics import BridgeMetrics
from rest_bridge.routes import RESERVED_PATHS, RouteTable
from rest_bridge.status import ApiError
from rest_bridge.traced_channel import traced_channel
from rest_bridge.transcoder import Transcoder

READY_TIMEOUT = 1.0


def _same(app: ASGIApp) -> ASGIApp:
    return app


class BridgeApp:
    """The ASGI entry point: the bridge's own paths go to FastAPI, every other HTTP request
    straight to the transcoder (no framework routing or middleware on the hot path), both
    behind the HTTP layers (rest_bridge.layers: CORS, HEAD, gzip)."""

    def __init__(
        self,
        api: FastAPI,
        transcoder: Transcoder,
        live: LiveSchema,
        metrics: BridgeMetrics | None = None,
        wrap: Callable[[ASGIApp], ASGIApp] = _same,
    ) -> None:
        self.api, self.transcoder, self.live = api, transcoder, live
        # Outermost first: the span, access line and metrics (one observer), then the HTTP
        # layers (CORS, HEAD, gzip), so what is logged and measured is what the client got.
        meter = metrics.http_meter() if metrics is not None else None
        self._handle = HttpObserver(wrap(self._route), meter)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._handle(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in RESERVED_PATHS:
            await self.transcoder(scope, receive, send)
        else:
            await self.api(scope, receive, send)


def create_app(
    config: BridgeConfig,
    channel: grpc.aio.Channel,
    schema: Schema | None,
    peers_serving: Callable[[], bool] | None = None,
    metrics: BridgeMetrics | None = None,
    *,
    in_process: bool = False,
) -> BridgeApp:
    """The ASGI app serving schema's services over channel; with schema None, every route is
    503 until one is swapped in through the app's `live` (rest_bridge.live_schema). With
    peers_serving (the worker group of --workers), /readyz is ready only while every worker
    serves. With metrics, every request and upstream call is measured into them. in_process
    says channel reaches the servicers without a network hop (`serve --rest-listen`): its calls
    get no client span of their own (rest_bridge.traced_channel).

    Raises:
        RouteError: the services' HTTP rules are malformed or collide.
    """
    channel = traced_channel(channel, client_spans=not in_process)
    live = LiveSchema(channel, metrics.client_call if metrics is not None else None)
    if schema is not None:
        live.load(schema)
    health_check = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    # FastAPI's own OpenAPI and docs are off: /openapi.json is generated from the descriptors.
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, redirect_slashes=False)
    handlers.install(app)

    async def openapi(request: Request) -> Response:
        served = live.current
        if served is None:
            return _no_schema(live).to_response(False, request_id(None))
        return Response(served.openapi, media_type=JSON_TYPE)

    async def healthz(request: Request) -> Response:
        return _data({"status": "ok"}, request)

    async def readyz(request: Request) -> Response:
        rid = request_id(request.headers.get("x-request-id"))
        if live.current is None:
            return _no_schema(live).to_response(False, rid)
        if peers_serving is not None and not peers_serving():
            return ApiError(
                grpc.StatusCode.UNAVAILABLE, "not every worker of the bridge serves", retry_after=1
            ).to_response(False, rid)
        try:
            reply = await health_check(health_pb2.HealthCheckRequest(), timeout=READY_TIMEOUT)
        except grpc.RpcError as exc:
            return ApiError.from_rpc_error(exc).to_response(False, rid)
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            return ApiError(
                grpc.StatusCode.UNAVAILABLE, "the checkpoint service is not serving", retry_after=1
            ).to_response(False, rid)
        if live.error:
            # Still serving the previous schema, which is why the bridge stays ready.
            return _data({"status": "serving", "schema_error": live.error}, request)
        return _data({"status": "serving"}, request)

    app.router.add_route("/openapi.json", openapi, methods=["GET"])
    app.router.add_route("/healthz", healthz, methods=["GET"])
    app.router.add_route("/readyz", readyz, methods=["GET"])
    docs_ui.install(app, "/openapi.json", "Checkpoint API")
    transcoder = Transcoder(
        live,
        codec=Codec(),
        timeout=config.timeout,
        max_body_bytes=config.max_body_bytes,
        max_in_flight=config.max_in_flight,
        heartbeat=config.heartbeat,
    )

    def table() -> RouteTable | None:
        served = live.current
        return served.table if served is not None else None

    return BridgeApp(
        app, transcoder, live, metrics, lambda inner: http_layers(inner, config, table)
    )


def _no_schema(live: LiveSchema) -> ApiError:
    reason = f" ({live.error})" if live.error else ""
    return ApiError(
        grpc.StatusCode.UNAVAILABLE, f"the bridge has no schema loaded yet{reason}", retry_after=1
    )


def _data(data: dict[str, str], request: Request) -> Response:
    body = data_body(data)
    rid = request_id(request.headers.get("x-request-id"))
    return Response(body, media_type=JSON_TYPE, headers={"X-Request-Id": rid})
