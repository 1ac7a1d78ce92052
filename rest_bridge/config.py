"""The bridge's settings, built once in main() from flags and the environment, then passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rest_bridge.descriptor_set import DEFAULT_SERVICES

DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_UPSTREAM = "127.0.0.1:50051"
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_IN_FLIGHT = 512
DEFAULT_MAX_HEADER_BYTES = 16 << 10
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 1000
KEEP_ALIVE_SECONDS = 5.0
"""An idle kept-alive connection (HTTP/1.1, or HTTP/2 without open streams) closes after this."""
DEFAULT_HEARTBEAT = 15.0
DEFAULT_UPSTREAM_CONNECTIONS = 4
"""TCP connections of each bridge worker to the upstream (docs/decisions.md: measured)."""


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    listen: str = DEFAULT_LISTEN
    upstream: str = DEFAULT_UPSTREAM
    upstream_connections: int = DEFAULT_UPSTREAM_CONNECTIONS
    """TCP connections to upstream, each call over the one with the fewest calls open."""
    timeout: float = DEFAULT_TIMEOUT
    """Deadline of every gRPC call, in seconds; a Grpc-Timeout header may only shorten it."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    """Requests handled at once; more are shed with 503 and Retry-After, never queued."""
    descriptor_set: Path | None = None
    """FileDescriptorSet to serve; None means the checkpoint.v1 set shipped with the package."""
    services: tuple[str, ...] = field(default=DEFAULT_SERVICES)
    """Services to expose; empty (only with reflect) means every one with an HTTP rule."""
    reflect: bool = False
    """Take the schema from the upstream's server reflection instead of a descriptor set."""
    reflect_interval: float = 0.0
    """Seconds between reflection fetches besides reconnects and SIGHUP; 0 for none."""
    metrics_listen: str = ""
    """HOST:PORT of the /metrics endpoint; empty serves (and records) no metrics."""
    cors_origins: tuple[str, ...] = ()
    """Origins whose browser pages may call the API (`*` for any); empty turns CORS off."""
    heartbeat: float = DEFAULT_HEARTBEAT
    """Seconds between SSE comment lines on an idle stream; 0 for none."""
