"""The HTTP layers in front of the bridge's dispatch, outermost first: CORS (only when origins
are configured), HEAD served as GET, gzip. HEAD sits outside gzip so a HEAD's headers are the
GET's exactly, Content-Length and Content-Encoding included; CORS sits outside everything so
even a shed request's 503 reaches the page."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp

from rest_bridge.compression import gzip_responses
from rest_bridge.config import BridgeConfig
from rest_bridge.cors import Cors
from rest_bridge.head import HeadAsGet
from rest_bridge.routes import RESERVED_PATHS, RouteTable, with_head


def http_layers(
    app: ASGIApp, config: BridgeConfig, table: Callable[[], RouteTable | None]
) -> ASGIApp:
    """app behind the layers config asks for; table gives the routes served right now (the
    schema may be swapped, rest_bridge.live_schema)."""
    layered: ASGIApp = HeadAsGet(gzip_responses(app))
    if config.cors_origins:

        def methods(raw_path: str) -> list[str]:
            if raw_path in RESERVED_PATHS:
                return with_head(["GET"])
            current = table()
            return current.methods(raw_path) if current is not None else []

        layered = Cors(layered, config.cors_origins, methods)
    return layered
