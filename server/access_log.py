"""The server's access line: one per gRPC call, at info, on the `checkpoint.access` logger.

The fields are the contract of the log (README, "Operating"). The caller is named by its token's
name from the tokens file, never by the token; no metadata value or message is logged. The entry
point hands over a writer of preformatted lines (`use_writer`; rest_bridge.access_lines builds
it, which server code may not import); without one, or when it declines, the line is a log
record whose `fields` are the line's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

ACCESS = logging.getLogger("checkpoint.access")
EVENT = "grpc_call"

Writer = Callable[[dict[str, object]], bool]
"""Writes one line of these fields, in their order; False when it wrote nothing."""
_direct: list[Writer | None] = [None]


def use_writer(writer: Writer | None) -> None:
    """Write access lines with writer (None: as log records)."""
    _direct[0] = writer


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
    fields: dict[str, object] = {  # the line's fields, in its order (a literal: no copy)
        "request_id": request_id,
        "trace_id": trace_id,
        "span_id": span_id,
        "duration_ms": round(duration_ms * 1000) / 1000,  # round(d, 3) at a tenth of its cost
        "grpc_method": grpc_method,
        "grpc_code": grpc_code,
        "peer": peer,
        "token_name": token_name,
    }
    direct = _direct[0]
    if direct is not None and direct(fields):
        return
    ACCESS.info(EVENT, extra={"fields": {"event": EVENT, **fields}})
