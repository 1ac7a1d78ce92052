"""The bridge's access line: one record per HTTP request, at info, on the checkpoint.access logger.

The fields are the contract of the log (README, "Operating"): never a header value, a token or a
body. The route is the template the request matched, so its values are bounded; a path that
matched no route is logged as UNMATCHED_ROUTE, never as itself.
"""

from __future__ import annotations

import logging

ACCESS = logging.getLogger("checkpoint.access")
UNMATCHED_ROUTE = "unmatched"
ROUTE_KEY = "checkpoint.route"
"""ASGI scope key under which the transcoder leaves the template of the route it matched."""


def write_http(
    *,
    method: str,
    route: str,
    status: int,
    grpc_code: str,
    bytes_out: int,
    client: str | None,
    duration_ms: float,
    request_id: str | None,
    trace_id: str | None,
    span_id: str | None,
) -> None:
    """Log one finished HTTP request."""
    if not ACCESS.isEnabledFor(logging.INFO):
        return
    fields = {
        "event": "http_request",
        "request_id": request_id,
        "trace_id": trace_id,
        "span_id": span_id,
        "duration_ms": round(duration_ms, 3),
        "method": method,
        "route": route,
        "status": status,
        "grpc_code": grpc_code,
        "bytes_out": bytes_out,
        "client": client,
    }
    ACCESS.info("http_request", extra={"fields": fields})
