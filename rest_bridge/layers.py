"""The HTTP layers in front of the bridge's dispatch, outermost first: CORS (only when origins
are configured), HEAD served as GET, gzip. HEAD sits outside gzip so a HEAD's headers are the
GET's exactly, Content-Length and Content-Encoding included; CORS sits outside everything so
even a shed request's 503 reaches the page."""

from __future__ import annotations

from starlette.types import ASGIApp

from rest_bridge.compression import gzip_responses
from rest_bridge.config import BridgeConfig
from rest_bridge.cors import Cors
from rest_bridge.head import HeadAsGet
from rest_bridge.routes import RESERVED_PATHS, RouteTable, with_head


def http_layers(app: ASGIApp, config: BridgeConfig, table: RouteTable) -> ASGIApp:
    """app behind the layers config asks for."""
    layered: ASGIApp = HeadAsGet(gzip_responses(app))
    if config.cors_origins:

        def methods(raw_path: str) -> list[str]:
            return with_head(["GET"]) if raw_path in RESERVED_PATHS else table.methods(raw_path)

        layered = Cors(layered, config.cors_origins, methods)
    return layered
