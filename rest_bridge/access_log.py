"""The bridge's access line: one per HTTP request, at info, on the checkpoint.access logger.

The fields are the contract of the log (README, "Operating"): never a header value, a token or a
body. The route is the template the request matched, so its values are bounded; a path that
matched no route is logged as UNMATCHED_ROUTE, never as itself. After set-up the line is written
by rest_bridge.access_lines without a log record; before it (or beside other handlers) it is a
record whose `fields` are the line's.
"""

from __future__ import annotations

import logging

from rest_bridge.access_lines import LineWriter, line_writer

__all__ = ["ROUTE_KEY", "UNMATCHED_ROUTE", "line_writer", "start_access_lines", "write_http"]

ACCESS = logging.getLogger("checkpoint.access")
UNMATCHED_ROUTE = "unmatched"
ROUTE_KEY = "checkpoint.route"
"""ASGI scope key under which the transcoder leaves the template of the route it matched."""

_direct: list[LineWriter | None] = [None]


def start_access_lines() -> None:
    """Write the lines directly to the stream setup_logging chose (call it after set-up)."""
    _direct[0] = line_writer("http_request")


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
    fields: dict[str, object] = {  # the line's fields, in its order (a literal: no copy)
        "request_id": request_id,
        "trace_id": trace_id,
        "span_id": span_id,
        "duration_ms": round(duration_ms * 1000) / 1000,  # round(d, 3) at a tenth of its cost
        "method": method,
        "route": route,
        "status": status,
        "grpc_code": grpc_code,
        "bytes_out": bytes_out,
        "client": client,
    }
    direct = _direct[0]
    if direct is not None and direct(fields):
        return
    ACCESS.info("http_request", extra={"fields": {"event": "http_request", **fields}})
