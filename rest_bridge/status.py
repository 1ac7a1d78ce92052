"""THE status table, and the one error value every failure becomes before it is rendered.

The table follows api-contract.md ("Status mapping"), not grpc-gateway: INVALID_ARGUMENT and
OUT_OF_RANGE are 422 (grpc-gateway: 400), FAILED_PRECONDITION is 409 (grpc-gateway: 400), and
CANCELLED is 499, the client-closed-request status nginx introduced.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import google.rpc.error_details_pb2 as error_details_pb2
import grpc
from grpc_status import rpc_status
from starlette.responses import Response

from rest_bridge.codec import DecodeError

# gRPC code -> (HTTP status, error.code). The one place this mapping exists.
STATUS_TABLE: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.OK: (200, "ok"),
    grpc.StatusCode.CANCELLED: (499, "cancelled"),
    grpc.StatusCode.UNKNOWN: (500, "unknown"),
    grpc.StatusCode.INVALID_ARGUMENT: (422, "invalid_argument"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "deadline_exceeded"),
    grpc.StatusCode.NOT_FOUND: (404, "not_found"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "already_exists"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "permission_denied"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "resource_exhausted"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "failed_precondition"),
    grpc.StatusCode.ABORTED: (409, "aborted"),
    grpc.StatusCode.OUT_OF_RANGE: (422, "out_of_range"),
    grpc.StatusCode.UNIMPLEMENTED: (501, "unimplemented"),
    grpc.StatusCode.INTERNAL: (500, "internal"),
    grpc.StatusCode.UNAVAILABLE: (503, "unavailable"),
    grpc.StatusCode.DATA_LOSS: (500, "data_loss"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "unauthenticated"),
}

# Messages for statuses that grpcio makes up itself (connection failures, deadlines, size
# limits): theirs can name internal addresses, so clients get these instead.
LOCAL_MESSAGES: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.UNAVAILABLE: "the checkpoint service is unavailable; retry later",
    grpc.StatusCode.DEADLINE_EXCEEDED: "the checkpoint service did not answer in time",
    grpc.StatusCode.CANCELLED: "the request was cancelled",
    grpc.StatusCode.UNKNOWN: "unknown error",
    grpc.StatusCode.INTERNAL: "internal error",
    grpc.StatusCode.UNIMPLEMENTED: "this method is not implemented by the checkpoint service",
    grpc.StatusCode.DATA_LOSS: "internal error",
}
OVERLOADED = "the checkpoint service is overloaded; retry later"
SHUTTING_DOWN = "the checkpoint service stopped while handling the request; retry it"
JSON_TYPE = "application/json"
# Returned when rendering an error itself fails: a constant, like grpc-gateway's fallback.
FALLBACK_BODY = b'{"error":{"code":"internal","message":"internal error"}}'


@dataclass(frozen=True)
class ApiError(Exception):
    """A failure on its way to the client: a gRPC code, a human message and optional extras."""

    code: grpc.StatusCode
    message: str
    violations: Sequence[tuple[str, str]] = ()
    """(field, description) pairs from google.rpc.BadRequest, shown as error.details."""
    http_status: int | None = None
    """Overrides the table's status (405 keeps the code unimplemented; 413 invalid_argument)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_after: float | None = None

    @classmethod
    def invalid(cls, message: str, fld: str = "", http_status: int | None = None) -> ApiError:
        return cls(
            grpc.StatusCode.INVALID_ARGUMENT,
            message,
            violations=((fld, message.split(": ", 1)[-1]),) if fld else (),
            http_status=http_status,
        )

    @classmethod
    def from_decode_error(cls, error: DecodeError) -> ApiError:
        return cls.invalid(str(error), error.field)

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> ApiError:
        """Read code, message and rich details (BadRequest, RetryInfo) from a failed call."""
        code: grpc.StatusCode = error.code()
        message: str = error.details() or ""
        try:
            status = rpc_status.from_call(error)  # type: ignore[arg-type]
        except ValueError:
            status = None
        violations: list[tuple[str, str]] = []
        retry_after: float | None = None
        for detail in status.details if status is not None else ():
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations += [(v.field, v.description) for v in bad.field_violations]
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                detail.Unpack(info)
                retry_after = info.retry_delay.ToTimedelta().total_seconds()
        if status is None and code in LOCAL_MESSAGES:
            message = LOCAL_MESSAGES[code]
        if code is grpc.StatusCode.CANCELLED and status is None:
            # The bridge never cancels a call it still answers, so this CANCELLED is the
            # upstream's: grpcio cancels calls that arrived as its server stopped. Retry elsewhere.
            code, message, retry_after = grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN, 1.0
        if code is grpc.StatusCode.RESOURCE_EXHAUSTED and retry_after is None:
            # Only a rate limit (RetryInfo) is a 429 (api-contract.md). Without it, grpcio is
            # shedding load (its concurrent-RPC cap) or refusing a message size: both are the
            # service's condition, not the client's, so the client may retry shortly.
            code, message, retry_after = grpc.StatusCode.UNAVAILABLE, OVERLOADED, 1.0
        return cls(code, message, tuple(violations), retry_after=retry_after)

    @property
    def status(self) -> int:
        return self.http_status or STATUS_TABLE[self.code][0]

    def envelope(self) -> dict[str, object]:
        error: dict[str, object] = {"code": STATUS_TABLE[self.code][1], "message": self.message}
        if self.violations:
            error["details"] = [{"field": f, "description": d} for f, d in self.violations]
        return {"error": error}

    def render(
        self, token_given: bool = False, request_id: str = ""
    ) -> tuple[dict[str, str], bytes]:
        """Headers and body: the envelope plus WWW-Authenticate, Retry-After, X-Request-Id."""
        headers = dict(self.headers)
        if self.code is grpc.StatusCode.UNAUTHENTICATED:
            headers["WWW-Authenticate"] = (
                'Bearer error="invalid_token"' if token_given else "Bearer"
            )
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        if request_id:
            headers["X-Request-Id"] = request_id
        try:
            body = json.dumps(self.envelope(), ensure_ascii=False, separators=(",", ":")).encode()
        except (TypeError, ValueError):
            body = FALLBACK_BODY
        return headers, body

    def to_response(self, token_given: bool = False, request_id: str = "") -> Response:
        """The rendered error as a Starlette response (for the framework's handlers)."""
        headers, body = self.render(token_given, request_id)
        return Response(body, status_code=self.status, headers=headers, media_type=JSON_TYPE)
