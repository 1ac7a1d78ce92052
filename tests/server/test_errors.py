"""Unit tests of server.errors: each error's gRPC code, message and google.rpc details."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from server.errors import (
    ERROR_DOMAIN,
    Aborted,
    AlreadyExists,
    CheckpointError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    Unavailable,
)

DETAILS_KEY = "grpc-status-details-bin"


def _status(error: CheckpointError) -> tuple[grpc.Status, status_pb2.Status]:
    """The grpc.Status of an error and the google.rpc.Status in its trailing metadata."""
    rpc = error.to_rpc_status()
    blobs = [v for k, v in rpc.trailing_metadata if k == DETAILS_KEY]
    assert len(blobs) == 1
    assert isinstance(blobs[0], bytes)
    return rpc, status_pb2.Status.FromString(blobs[0])


def _unpack(details: list[any_pb2.Any], kind: type[object]) -> list[object]:
    out: list[object] = []
    for detail in details:
        if detail.Is(kind.DESCRIPTOR):  # type: ignore[attr-defined]
            value = kind()
            detail.Unpack(value)  # type: ignore[arg-type]
            out.append(value)
    return out


@pytest.mark.parametrize(
    ("error", "code", "reason"),
    [
        pytest.param(CheckpointError("m"), grpc.StatusCode.UNKNOWN, "UNKNOWN", id="base"),
        pytest.param(
            InvalidArgument("m"), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", id="invalid"
        ),
        pytest.param(NotFound("m"), grpc.StatusCode.NOT_FOUND, "CHECKPOINT_NOT_FOUND", id="nf"),
        pytest.param(
            AlreadyExists("m"), grpc.StatusCode.ALREADY_EXISTS, "DISPLAY_NAME_TAKEN", id="exists"
        ),
        pytest.param(
            FailedPrecondition("m"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "INVALID_STATE_TRANSITION",
            id="precondition",
        ),
        pytest.param(Aborted("m"), grpc.StatusCode.ABORTED, "ETAG_MISMATCH", id="aborted"),
        pytest.param(
            Unauthenticated("m"), grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED", id="unauth"
        ),
        pytest.param(
            PermissionDenied("m"), grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE", id="denied"
        ),
        pytest.param(
            RateLimited("m", 1.5), grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED", id="rate"
        ),
        pytest.param(
            Unavailable("m"), grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE", id="unavailable"
        ),
    ],
)
def test_status_carries_code_message_and_error_info(
    error: CheckpointError, code: grpc.StatusCode, reason: str
) -> None:
    """Every error becomes its gRPC code and message, with an ErrorInfo of our domain."""
    rpc, status = _status(error)
    assert rpc.code is code
    assert rpc.details == "m"
    assert status.code == code.value[0]
    assert status.message == "m"
    infos = _unpack(list(status.details), error_details_pb2.ErrorInfo)
    assert infos == [error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN)]


def test_invalid_argument_carries_bad_request() -> None:
    """INVALID_ARGUMENT with violations adds a BadRequest listing each field and description."""
    error = InvalidArgument(
        "bad", [FieldViolation("display_name", "must not be empty"), FieldViolation("x", "y")]
    )
    _, status = _status(error)
    [bad] = _unpack(list(status.details), error_details_pb2.BadRequest)
    assert isinstance(bad, error_details_pb2.BadRequest)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("display_name", "must not be empty"),
        ("x", "y"),
    ]


def test_invalid_argument_without_violations_has_no_bad_request() -> None:
    """No violations means no (empty) BadRequest detail."""
    _, status = _status(InvalidArgument("bad"))
    assert _unpack(list(status.details), error_details_pb2.BadRequest) == []


def test_for_field_names_the_field() -> None:
    """for_field makes a one-violation error whose message starts with the field."""
    error = InvalidArgument.for_field("page_size", "must not be negative")
    assert error.message == "page_size: must not be negative"
    assert error.violations == (FieldViolation("page_size", "must not be negative"),)
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    ("retry_after", "seconds", "nanos"),
    [
        pytest.param(0.25, 0, 250_000_000, id="quarter"),
        pytest.param(1.5, 1, 500_000_000, id="one-and-a-half"),
        pytest.param(3.0, 3, 0, id="whole"),
    ],
)
def test_rate_limited_carries_retry_info(retry_after: float, seconds: int, nanos: int) -> None:
    """RESOURCE_EXHAUSTED from the rate limiter has a RetryInfo with the wait."""
    _, status = _status(RateLimited("slow down", retry_after))
    [info] = _unpack(list(status.details), error_details_pb2.RetryInfo)
    assert isinstance(info, error_details_pb2.RetryInfo)
    assert (info.retry_delay.seconds, info.retry_delay.nanos) == (seconds, nanos)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(NotFound("m"), id="not-found"),
        pytest.param(Unavailable("m"), id="unavailable"),
        pytest.param(Aborted("m"), id="aborted"),
    ],
)
def test_other_errors_have_no_retry_info_or_bad_request(error: CheckpointError) -> None:
    """Only the rate limit has RetryInfo and only INVALID_ARGUMENT has BadRequest."""
    _, status = _status(error)
    assert len(status.details) == 1
    assert _unpack(list(status.details), error_details_pb2.RetryInfo) == []
    assert _unpack(list(status.details), error_details_pb2.BadRequest) == []


def test_error_classes_are_python_idioms() -> None:
    """NotFound is a LookupError and InvalidArgument a ValueError, for ordinary except clauses."""
    assert issubclass(NotFound, LookupError)
    assert issubclass(InvalidArgument, ValueError)
    assert str(NotFound("gone")) == "gone"


@pytest.mark.parametrize("code", list(grpc.StatusCode), ids=lambda c: c.name)
def test_grpc_status_numbers_are_google_rpc_code_numbers(code: grpc.StatusCode) -> None:
    """to_rpc_status puts grpc.StatusCode's number in google.rpc.Status: the two must agree."""
    assert code_pb2.Code.Value(code.name) == code.value[0]
