"""The server's access line: one record per gRPC call, at info, on the `checkpoint.access` logger.

The fields are the contract of the log (README, "Operating"). The caller is named by its token's
name from the tokens file, never by the token; no metadata value or message is logged.
"""

from __future__ import annotations

import logging

ACCESS = logging.getLogger("checkpoint.access")


def write_call(
    *,
    grpc_method: str,
    grpc_code: str,
    peer: str,
    token_name: str | None,
    duration_ms: float,
    request_id: str,
    trace_id: str | None,
    span_id: str | None,
) -> None:
    """Log one finished gRPC call."""
    if not ACCESS.isEnabledFor(logging.INFO):
        return
    fields = {
        "event": "grpc_call",
        "request_id": request_id,
        "trace_id": trace_id,
        "span_id": span_id,
        "duration_ms": round(duration_ms, 3),
        "grpc_method": grpc_method,
        "grpc_code": grpc_code,
        "peer": peer,
        "token_name": token_name,
    }
    ACCESS.info("grpc_call", extra={"fields": fields})
