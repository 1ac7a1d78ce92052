"""Unit tests of rest_bridge.status: the status table, failed calls into errors, error responses."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from rest_bridge.codec import DecodeError
from rest_bridge.status import FALLBACK_BODY, STATUS_TABLE, ApiError
from server.errors import (
    FieldViolation,
    InvalidArgument,
    NotFound,
    RateLimited,
    Unavailable,
)

S = grpc.StatusCode

# Copied by hand from api-contract.md, "Status mapping (one table, used everywhere)".
CONTRACT_TABLE: dict[grpc.StatusCode, tuple[int, str]] = {
    S.UNAUTHENTICATED: (401, "unauthenticated"),
    S.PERMISSION_DENIED: (403, "permission_denied"),
    S.NOT_FOUND: (404, "not_found"),
    S.ALREADY_EXISTS: (409, "already_exists"),
    S.ABORTED: (409, "aborted"),
    S.FAILED_PRECONDITION: (409, "failed_precondition"),
    S.INVALID_ARGUMENT: (422, "invalid_argument"),
    S.OUT_OF_RANGE: (422, "out_of_range"),
    S.RESOURCE_EXHAUSTED: (429, "resource_exhausted"),
    S.UNAVAILABLE: (503, "unavailable"),
    S.DEADLINE_EXCEEDED: (504, "deadline_exceeded"),
    S.CANCELLED: (499, "cancelled"),
    S.UNIMPLEMENTED: (501, "unimplemented"),
    S.UNKNOWN: (500, "unknown"),
    S.INTERNAL: (500, "internal"),
    S.DATA_LOSS: (500, "data_loss"),
}

CONNECT_FAILURE = (
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:10.1.2.3:50051: "
    "Failed to connect to remote host: Connection refused"
)


def test_contract_table_covers_every_error_code() -> None:
    """The contract's table names every gRPC code except OK."""
    assert set(CONTRACT_TABLE) == set(grpc.StatusCode) - {S.OK}


@pytest.mark.parametrize(
    ("code", "expected"),
    [pytest.param(code, row, id=code.name.lower()) for code, row in CONTRACT_TABLE.items()],
)
def test_status_table_matches_contract(code: grpc.StatusCode, expected: tuple[int, str]) -> None:
    """Each gRPC code maps to the contract's HTTP status and lowercase error code."""
    assert STATUS_TABLE[code] == expected
    assert ApiError(code, "m").status == expected[0]
    assert ApiError(code, "m").envelope() == {"error": {"code": expected[1], "message": "m"}}


def test_status_table_has_nothing_else() -> None:
    """STATUS_TABLE holds the contract's codes plus OK, nothing more."""
    assert set(STATUS_TABLE) == set(CONTRACT_TABLE) | {S.OK}


# -- from_rpc_error ---------------------------------------------------------------------------


def _server_error(err: Exception) -> grpc.aio.AioRpcError:
    """The error a client sees when the server aborts with one of server.errors."""
    assert hasattr(err, "to_rpc_status")
    status = err.to_rpc_status()
    return grpc.aio.AioRpcError(
        status.code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*status.trailing_metadata),
        details=status.details,
        debug_error_string=None,
    )


def _local_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    """An error grpcio makes up itself: no rich status in the trailers."""
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details, None)


def _rich_error(code: grpc.StatusCode, message: str, *details: Any) -> grpc.aio.AioRpcError:
    packed = []
    for detail in details:
        item = any_pb2.Any()
        item.Pack(detail)
        packed.append(item)
    status = status_pb2.Status(code=code.value[0], message=message, details=packed)
    trailers = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, message, None)


def _body(response: Any) -> Any:
    return json.loads(bytes(response.body))


def test_rate_limit_is_429_with_retry_after() -> None:
    """RESOURCE_EXHAUSTED with RetryInfo is 429 with Retry-After rounded up to whole seconds."""
    error = ApiError.from_rpc_error(_server_error(RateLimited("slow down", 1.5)))
    assert error.status == 429
    assert error.retry_after == pytest.approx(1.5)
    response = error.to_response()
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert _body(response) == {"error": {"code": "resource_exhausted", "message": "slow down"}}


@pytest.mark.parametrize(
    "rpc_error",
    [
        pytest.param(
            _local_error(
                S.RESOURCE_EXHAUSTED, "Received message larger than max (5000000 vs. 4194304)"
            ),
            id="local-size-limit",
        ),
        pytest.param(
            _rich_error(S.RESOURCE_EXHAUSTED, "quota", error_details_pb2.ErrorInfo(reason="QUOTA")),
            id="rich-without-retry-info",
        ),
    ],
)
def test_exhaustion_without_retry_info_is_not_429(rpc_error: grpc.aio.AioRpcError) -> None:
    """RESOURCE_EXHAUSTED without RetryInfo is not a rate limit, so it is not a 429."""
    error = ApiError.from_rpc_error(rpc_error)
    response = error.to_response()
    assert response.status_code != 429
    assert _body(response)["error"]["code"] != "resource_exhausted"
    assert "4194304" not in _body(response)["error"]["message"]


@pytest.mark.parametrize(
    ("code", "status", "message"),
    [
        pytest.param(
            S.UNAVAILABLE, 503, "the checkpoint service is unavailable; retry later", id="down"
        ),
        pytest.param(
            S.DEADLINE_EXCEEDED, 504, "the checkpoint service did not answer in time", id="slow"
        ),
        pytest.param(S.INTERNAL, 500, "internal error", id="internal"),
        pytest.param(S.UNKNOWN, 500, "unknown error", id="unknown"),
    ],
)
def test_local_failures_get_fixed_messages(
    code: grpc.StatusCode, status: int, message: str
) -> None:
    """A status grpcio made up (no rich status) gets a fixed message that names no address."""
    error = ApiError.from_rpc_error(_local_error(code, CONNECT_FAILURE))
    response = error.to_response()
    assert response.status_code == status
    assert _body(response) == {"error": {"code": STATUS_TABLE[code][1], "message": message}}
    assert b"10.1.2.3" not in bytes(response.body)


def test_server_unavailable_keeps_its_message() -> None:
    """An UNAVAILABLE from the server itself (rich status) keeps the server's message."""
    error = ApiError.from_rpc_error(_server_error(Unavailable("the checkpoint store is down")))
    assert (error.status, error.message) == (503, "the checkpoint store is down")


def test_not_found_keeps_message() -> None:
    """A server NOT_FOUND is 404 with the server's message."""
    error = ApiError.from_rpc_error(_server_error(NotFound('checkpoint "x" not found')))
    assert _body(error.to_response()) == {
        "error": {"code": "not_found", "message": 'checkpoint "x" not found'}
    }
    assert error.to_response().status_code == 404


def test_bad_request_becomes_details() -> None:
    """BadRequest field violations become error.details entries with field and description."""
    err = InvalidArgument(
        "invalid checkpoint: display_name: must not be empty",
        [FieldViolation("checkpoint.display_name", "must not be empty")],
    )
    response = ApiError.from_rpc_error(_server_error(err)).to_response()
    assert response.status_code == 422
    assert _body(response) == {
        "error": {
            "code": "invalid_argument",
            "message": "invalid checkpoint: display_name: must not be empty",
            "details": [{"field": "checkpoint.display_name", "description": "must not be empty"}],
        }
    }


def test_inconsistent_rich_status_is_ignored() -> None:
    """A rich status whose code disagrees with the call's is ignored, not a crash."""
    status = status_pb2.Status(code=S.NOT_FOUND.value[0], message="other")
    trailers = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
    rpc_error = grpc.aio.AioRpcError(S.UNAVAILABLE, grpc.aio.Metadata(), trailers, "x", None)
    error = ApiError.from_rpc_error(rpc_error)
    assert error.status == 503
    assert error.message == "the checkpoint service is unavailable; retry later"


# -- responses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token_given", "header"),
    [
        pytest.param(False, "Bearer", id="no-token"),
        pytest.param(True, 'Bearer error="invalid_token"', id="token-given"),
    ],
)
def test_www_authenticate_on_401(token_given: bool, header: str) -> None:
    """401 carries WWW-Authenticate: Bearer, with error="invalid_token" when a token was sent."""
    response = ApiError(S.UNAUTHENTICATED, "invalid bearer token").to_response(token_given)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == header


@pytest.mark.parametrize(
    "code", [pytest.param(S.PERMISSION_DENIED, id="403"), pytest.param(S.NOT_FOUND, id="404")]
)
def test_no_www_authenticate_otherwise(code: grpc.StatusCode) -> None:
    """Only 401 carries WWW-Authenticate."""
    assert "WWW-Authenticate" not in ApiError(code, "m").to_response(True).headers


@pytest.mark.parametrize(
    ("retry_after", "header"),
    [
        pytest.param(0.01, "1", id="at-least-one"),
        pytest.param(1.0, "1", id="whole"),
        pytest.param(2.2, "3", id="rounded-up"),
    ],
)
def test_retry_after_header(retry_after: float, header: str) -> None:
    """Retry-After is whole seconds, rounded up, never 0."""
    response = ApiError(S.UNAVAILABLE, "busy", retry_after=retry_after).to_response()
    assert response.headers["Retry-After"] == header


def test_response_headers_and_type() -> None:
    """An error response is JSON, echoes the request id and keeps extra headers (Allow)."""
    error = ApiError(
        S.UNIMPLEMENTED, "not allowed", http_status=405, headers={"Allow": "GET, PATCH"}
    )
    response = error.to_response(request_id="req-1")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, PATCH"
    assert response.headers["X-Request-Id"] == "req-1"
    assert response.headers["content-type"] == "application/json"
    assert _body(response) == {"error": {"code": "unimplemented", "message": "not allowed"}}


def test_invalid_with_field_and_status_override() -> None:
    """ApiError.invalid makes one detail from the message and may override the HTTP status."""
    error = ApiError.invalid("page_size: must be an integer", "page_size", http_status=413)
    assert error.status == 413
    assert error.envelope() == {
        "error": {
            "code": "invalid_argument",
            "message": "page_size: must be an integer",
            "details": [{"field": "page_size", "description": "must be an integer"}],
        }
    }


def test_from_decode_error() -> None:
    """A DecodeError becomes a 422 invalid_argument naming its field."""
    error = ApiError.from_decode_error(DecodeError("state: must be one of ready", "state"))
    assert error.status == 422
    assert error.violations == (("state", "must be one of ready"),)


def test_decode_error_without_field_has_no_details() -> None:
    """A DecodeError not tied to a field has no details key."""
    error = ApiError.from_decode_error(DecodeError("request body is not valid JSON"))
    assert error.envelope() == {
        "error": {"code": "invalid_argument", "message": "request body is not valid JSON"}
    }


def test_fallback_body_is_valid_envelope() -> None:
    """The constant fallback body is itself a valid internal-error envelope."""
    assert json.loads(FALLBACK_BODY) == {"error": {"code": "internal", "message": "internal error"}}
