"""THE status table, and the one error value every failure becomes before it is rendered.

The table follows api-contract.md ("Status mapping"), not grpc-gateway: INVALID_ARGUMENT and
OUT_OF_RANGE are 422 (grpc-gateway: 400), FAILED_PRECONDITION is 409 (grpc-gateway: 400), and
CANCELLED is 499, the client-closed-request status nginx introduced. The OpenAPI document is
derived from the same data (STATUS_TABLE, STATUS_DESCRIPTIONS, ERROR_HEADERS), so what it
documents is what ApiError renders.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import google.rpc.error_details_pb2 as error_details_pb2
import grpc
from grpc_status import rpc_status
from starlette.exceptions import HTTPException
from starlette.responses import Response

from rest_bridge.codec import DecodeError
from rest_bridge.envelope import JSON_TYPE, dumps

Code = grpc.StatusCode


class StatusRow(NamedTuple):
    """A row of STATUS_TABLE (a plain tuple too, so it compares equal to (404, "not_found"))."""

    http: int
    code: str
    """error.code in the envelope: the gRPC code's name in lowercase."""


# gRPC code -> (HTTP status, error.code). The one place this mapping exists.
STATUS_TABLE: dict[grpc.StatusCode, StatusRow] = {
    Code.OK: StatusRow(200, "ok"),
    Code.CANCELLED: StatusRow(499, "cancelled"),
    Code.UNKNOWN: StatusRow(500, "unknown"),
    Code.INVALID_ARGUMENT: StatusRow(422, "invalid_argument"),
    Code.DEADLINE_EXCEEDED: StatusRow(504, "deadline_exceeded"),
    Code.NOT_FOUND: StatusRow(404, "not_found"),
    Code.ALREADY_EXISTS: StatusRow(409, "already_exists"),
    Code.PERMISSION_DENIED: StatusRow(403, "permission_denied"),
    Code.RESOURCE_EXHAUSTED: StatusRow(429, "resource_exhausted"),
    Code.FAILED_PRECONDITION: StatusRow(409, "failed_precondition"),
    Code.ABORTED: StatusRow(409, "aborted"),
    Code.OUT_OF_RANGE: StatusRow(422, "out_of_range"),
    Code.UNIMPLEMENTED: StatusRow(501, "unimplemented"),
    Code.INTERNAL: StatusRow(500, "internal"),
    Code.UNAVAILABLE: StatusRow(503, "unavailable"),
    Code.DATA_LOSS: StatusRow(500, "data_loss"),
    Code.UNAUTHENTICATED: StatusRow(401, "unauthenticated"),
}

# Every error status of the table -> its description in the OpenAPI document (the seed page's
# wording), or None for the statuses documented together as "default". Keyed by HTTP status,
# not by code, because codes that share a status (409, 422, 500) share its response.
STATUS_DESCRIPTIONS: dict[int, str | None] = {
    401: "Missing, malformed, or rejected bearer token",
    403: "The bearer token is not allowed to perform this action",
    404: "The requested resource was not found",
    409: "The request conflicts with current resource state",
    422: "Validation or application error",
    429: "Rate limit exceeded",
    499: None,
    500: None,
    501: None,
    503: "Upstream service is unavailable",
    504: "Upstream request timed out",
}
DEFAULT_DESCRIPTION = "Error response"


@dataclass(frozen=True)
class ErrorHeader:
    """A header an error response may carry, with the codes whose responses document it."""

    name: str
    description: str
    codes: frozenset[grpc.StatusCode]


REQUEST_ID = ErrorHeader(
    "X-Request-Id", "The request id, echoed or generated.", frozenset(Code) - {Code.OK}
)
WWW_AUTHENTICATE = ErrorHeader(
    "WWW-Authenticate",
    'Bearer, with error="invalid_token" when a token was sent.',
    frozenset({Code.UNAUTHENTICATED}),
)
"""Sent on exactly these codes."""
RETRY_AFTER = ErrorHeader(
    "Retry-After",
    "Seconds to wait before retrying.",
    frozenset({Code.RESOURCE_EXHAUSTED, Code.UNAVAILABLE}),
)
"""Sent with every error that has a retry delay: the bridge gives one to these codes (shedding,
stopping, readiness), and a rate limit (RetryInfo) is the only way to a 429."""
ERROR_HEADERS: tuple[ErrorHeader, ...] = (REQUEST_ID, WWW_AUTHENTICATE, RETRY_AFTER)
"""In the order the OpenAPI document lists them."""


class DocumentedStatus(NamedTuple):
    """One error response of the OpenAPI document."""

    key: str
    """The HTTP status as text, or "default"."""
    description: str
    codes: frozenset[grpc.StatusCode]
    """The codes answered with this response."""
    headers: tuple[ErrorHeader, ...]
    """The headers ApiError.render may add for those codes, besides the error's own."""


def documented_statuses() -> list[DocumentedStatus]:
    """The error responses the OpenAPI document lists: every described status in ascending
    order, then "default" for the rest.

    Raises:
        ValueError: STATUS_DESCRIPTIONS does not name exactly the table's error statuses.
    """
    rows = [(code, row.http) for code, row in STATUS_TABLE.items() if code is not Code.OK]
    statuses = {status for _, status in rows}
    if set(STATUS_DESCRIPTIONS) != statuses:
        raise ValueError(
            "STATUS_DESCRIPTIONS must describe exactly the statuses of STATUS_TABLE: "
            f"missing {sorted(statuses - set(STATUS_DESCRIPTIONS))}, "
            f"unused {sorted(set(STATUS_DESCRIPTIONS) - statuses)}"
        )
    groups: list[tuple[str, str, frozenset[grpc.StatusCode]]] = []
    for status in sorted(statuses):
        description = STATUS_DESCRIPTIONS[status]
        if description is not None:
            groups.append((str(status), description, frozenset(c for c, h in rows if h == status)))
    rest = frozenset(code for code, http in rows if STATUS_DESCRIPTIONS[http] is None)
    groups.append(("default", DEFAULT_DESCRIPTION, rest))
    return [
        DocumentedStatus(key, text, codes, tuple(h for h in ERROR_HEADERS if h.codes & codes))
        for key, text, codes in groups
    ]


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
    reason: str = ""
    """The upstream's google.rpc.ErrorInfo reason, if it sent one (never shown to clients)."""

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
    def from_http_exception(cls, exc: HTTPException) -> ApiError:
        """An HTTPException the framework raised, with the envelope the table gives its status.

        The framework sees only the bridge's own GET-only paths (app.BridgeApp sends every
        other path to the transcoder), so all it can raise is 405 for a wrong method there.
        That keeps the code the transcoder gives a wrong method, unimplemented (501 in the
        table, so the status is overridden). Any other status takes the first code the table
        maps to it, else unknown.
        """
        status = exc.status_code
        if status == 405:
            code = Code.UNIMPLEMENTED
        else:
            code = next((c for c, row in STATUS_TABLE.items() if row.http == status), Code.UNKNOWN)
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        headers = dict(exc.headers or {})
        if "Allow" in headers:
            # Starlette joins a set, so its order follows the hash seed; sorted, like the
            # transcoder's own 405.
            headers["Allow"] = ", ".join(sorted(m.strip() for m in headers["Allow"].split(",")))
        return cls(
            code,
            message,
            http_status=None if STATUS_TABLE[code].http == status else status,
            headers=headers,
        )

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
        reason = ""
        for detail in status.details if status is not None else ():
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations += [(v.field, v.description) for v in bad.field_violations]
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                detail.Unpack(info)
                retry_after = info.retry_delay.ToTimedelta().total_seconds()
            elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                error_info = error_details_pb2.ErrorInfo()
                detail.Unpack(error_info)
                reason = error_info.reason
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
        return cls(code, message, tuple(violations), retry_after=retry_after, reason=reason)

    @property
    def status(self) -> int:
        return self.http_status or STATUS_TABLE[self.code].http

    def envelope(self) -> dict[str, object]:
        error: dict[str, object] = {"code": STATUS_TABLE[self.code].code, "message": self.message}
        if self.violations:
            error["details"] = [{"field": f, "description": d} for f, d in self.violations]
        return {"error": error}

    def render(
        self, token_given: bool = False, request_id: str = ""
    ) -> tuple[dict[str, str], bytes]:
        """Headers and body: the envelope plus WWW-Authenticate, Retry-After, X-Request-Id."""
        headers = dict(self.headers)
        if self.code in WWW_AUTHENTICATE.codes:
            headers[WWW_AUTHENTICATE.name] = (
                'Bearer error="invalid_token"' if token_given else "Bearer"
            )
        if self.retry_after is not None:
            headers[RETRY_AFTER.name] = str(max(1, math.ceil(self.retry_after)))
        if request_id:
            headers[REQUEST_ID.name] = request_id
        try:
            body = dumps(self.envelope())
        except (TypeError, ValueError):
            body = FALLBACK_BODY
        return headers, body

    def to_response(self, token_given: bool = False, request_id: str = "") -> Response:
        """The rendered error as a Starlette response (for the framework's handlers)."""
        headers, body = self.render(token_given, request_id)
        return Response(body, status_code=self.status, headers=headers, media_type=JSON_TYPE)
