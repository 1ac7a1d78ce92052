"""The bridge served from another process's event loop, over a channel that process provides.

`checkpoint-server serve --rest-listen` uses it with a local channel to its own servicers; the
bridge only sees a grpc.aio.Channel, as it does in its own process, except that its calls get
no client span: there is no network hop for one to measure (docs/decisions.md, "Logs and traces").
"""

from __future__ import annotations

import ssl

import grpc
from prometheus_client import CollectorRegistry

from rest_bridge.app import create_app
from rest_bridge.config import BridgeConfig
from rest_bridge.descriptor_set import SchemaError, default_descriptor_set, load_schema
from rest_bridge.edge_io import EdgeLimits
from rest_bridge.metrics import BridgeMetrics
from rest_bridge.routes import RouteError
from rest_bridge.serving import BackgroundServer, start_in_background


async def serve_embedded(
    channel: grpc.aio.Channel,
    config: BridgeConfig,
    *,
    flag: str,
    registry: CollectorRegistry | None = None,
    limits: EdgeLimits | None = None,
    tls: ssl.SSLContext | None = None,
    reuse_port: bool = False,
) -> BackgroundServer:
    """The bridge on config.listen (named flag in errors), calling through channel; measured
    into registry when given.

    Raises:
        RuntimeError: the bridge cannot be built or its address cannot be served.
    """
    try:
        schema = load_schema(config.descriptor_set or default_descriptor_set(), config.services)
        metrics = None if registry is None else BridgeMetrics(registry)
        app = create_app(config, channel, schema, metrics=metrics, in_process=True)
    except (SchemaError, RouteError) as exc:
        raise RuntimeError(f"cannot build the REST bridge: {exc}") from exc
    return await start_in_background(
        app,
        config.listen,
        flag,
        limits=limits or EdgeLimits(),
        tls=tls,
        reuse_port=reuse_port,
    )
