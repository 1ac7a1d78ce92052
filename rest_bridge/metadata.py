"""Headers in and out: what becomes gRPC metadata, the deadline, and the request id.

Only an allow-list of headers is forwarded (api-contract.md, "Headers"); Authorization goes to
the gRPC server and nowhere else.
"""

from __future__ import annotations

import re

from checkpoint_tracing.ids import new_request_id
from rest_bridge.codec import DecodeError

# HTTP header (lowercase) -> gRPC metadata key. Nothing else is forwarded. The trace context is
# not copied verbatim: the upstream call's span continues it (rest_bridge.traced_channel).
FORWARDED: dict[str, str] = {
    "authorization": "authorization",
    "x-request-id": "x-request-id",
    "traceparent": "traceparent",
    "tracestate": "tracestate",
}

MAX_AUTHORIZATION_LENGTH = 4096
"""Longer Authorization values are forwarded empty: real bearer tokens are far shorter."""
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_GRPC_TIMEOUT = re.compile(r"([0-9]{1,8})([HMSmun])")
_UNIT_SECONDS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def request_id(header: str | None) -> str:
    """The caller's X-Request-Id when it is a sane token, else a fresh one."""
    if header and _REQUEST_ID.fullmatch(header):
        return header
    return new_request_id()


def outbound(authorization: list[str], rid: str) -> tuple[tuple[str, str], ...]:
    """gRPC metadata for a call. A header value gRPC cannot carry (non-printable, or longer than
    any token; grpcio refuses metadata over 16 KiB with RESOURCE_EXHAUSTED) is sent empty, so the
    server still decides: it answers "malformed authorization header"."""
    pairs = [("authorization", v if _forwardable(v) else "") for v in authorization]
    pairs.append(("x-request-id", rid))
    return tuple(pairs)


def _forwardable(value: str) -> bool:
    return len(value) <= MAX_AUTHORIZATION_LENGTH and _PRINTABLE.fullmatch(value) is not None


def deadline(header: str | None, cap: float) -> float:
    """Seconds the call may take: the Grpc-Timeout header (gRPC syntax) capped by the config.

    Raises:
        DecodeError: the header is not gRPC timeout syntax, e.g. "500m" or "2S".
    """
    if header is None:
        return cap
    found = _GRPC_TIMEOUT.fullmatch(header.strip())
    if found is None:
        raise DecodeError(
            "Grpc-Timeout header must be 1-8 digits and a unit (H, M, S, m, u, n), e.g. 500m",
            "Grpc-Timeout",
        )
    return min(cap, int(found.group(1)) * _UNIT_SECONDS[found.group(2)])
