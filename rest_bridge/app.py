"""Assemble the bridge: routes from descriptors, the transcoder, probes, OpenAPI, error handlers."""

from __future__ import annotations

import json

import grpc
from fastapi import FastAPI
from grpc_health.v1 import health_pb2
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from rest_bridge import handlers
from rest_bridge.codec import Codec
from rest_bridge.config import BridgeConfig
from rest_bridge.descriptor_set import Schema
from rest_bridge.envelope import JSON_TYPE, data_body
from rest_bridge.metadata import request_id
from rest_bridge.openapi import build_openapi
from rest_bridge.routes import RESERVED_PATHS, build_routes
from rest_bridge.status import ApiError
from rest_bridge.transcoder import Transcoder

READY_TIMEOUT = 1.0


class BridgeApp:
    """The ASGI entry point: the bridge's own paths go to FastAPI, every other HTTP request
    straight to the transcoder (no framework routing or middleware on the hot path)."""

    def __init__(self, api: FastAPI, transcoder: Transcoder) -> None:
        self.api, self.transcoder = api, transcoder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in RESERVED_PATHS:
            await self.transcoder(scope, receive, send)
        else:
            await self.api(scope, receive, send)


def create_app(config: BridgeConfig, channel: grpc.aio.Channel, schema: Schema) -> BridgeApp:
    """The ASGI app serving schema's services over channel.

    Raises:
        RouteError: the services' HTTP rules are malformed or collide.
    """
    table = build_routes(schema)
    openapi_body = json.dumps(build_openapi(schema, table), ensure_ascii=False).encode()
    health_check = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    # FastAPI's own OpenAPI and docs are off: /openapi.json is generated from the descriptors.
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, redirect_slashes=False)
    handlers.install(app)

    async def openapi(request: Request) -> Response:
        return Response(openapi_body, media_type=JSON_TYPE)

    async def healthz(request: Request) -> Response:
        return _data({"status": "ok"}, request)

    async def readyz(request: Request) -> Response:
        rid = request_id(request.headers.get("x-request-id"))
        try:
            reply = await health_check(health_pb2.HealthCheckRequest(), timeout=READY_TIMEOUT)
        except grpc.RpcError as exc:
            return ApiError.from_rpc_error(exc).to_response(False, rid)
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            return ApiError(
                grpc.StatusCode.UNAVAILABLE, "the checkpoint service is not serving", retry_after=1
            ).to_response(False, rid)
        return _data({"status": "serving"}, request)

    app.router.add_route("/openapi.json", openapi, methods=["GET"])
    app.router.add_route("/healthz", healthz, methods=["GET"])
    app.router.add_route("/readyz", readyz, methods=["GET"])
    transcoder = Transcoder(
        table,
        channel=channel,
        codec=Codec(),
        timeout=config.timeout,
        max_body_bytes=config.max_body_bytes,
        max_in_flight=config.max_in_flight,
        heartbeat=config.heartbeat,
    )
    return BridgeApp(app, transcoder)


def _data(data: dict[str, str], request: Request) -> Response:
    body = data_body(data)
    rid = request_id(request.headers.get("x-request-id"))
    return Response(body, media_type=JSON_TYPE, headers={"X-Request-Id": rid})
