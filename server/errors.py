"""The service's error tree; each class carries its gRPC code, so the mapping is data.

    CheckpointError                  UNKNOWN (never raised itself)
    ├── InvalidArgument (ValueError) INVALID_ARGUMENT, with BadRequest field violations
    ├── NotFound (LookupError)       NOT_FOUND
    ├── AlreadyExists                ALREADY_EXISTS
    ├── FailedPrecondition           FAILED_PRECONDITION (a state move the machine refuses)
    ├── Aborted                      ABORTED (etag mismatch, lost a write race)
    ├── Unauthenticated              UNAUTHENTICATED
    ├── PermissionDenied             PERMISSION_DENIED
    ├── OutOfRange                   OUT_OF_RANGE (a resume point older than the history)
    ├── RateLimited                  RESOURCE_EXHAUSTED, with RetryInfo
    │   └── TooManyWatchers          RESOURCE_EXHAUSTED, with RetryInfo (--max-watchers)
    └── Unavailable                  UNAVAILABLE (the store cannot be reached)

The store raises these (wrapping driver errors `from exc`); the call guard turns them into gRPC
statuses with `to_rpc_status`. Messages are for people: they never hold a token or SQL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import google.rpc.error_details_pb2 as error_details_pb2
import google.rpc.status_pb2 as status_pb2
import grpc
from google.protobuf import any_pb2, duration_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "checkpoint.v1"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid field, as google.rpc.BadRequest.FieldViolation names it."""

    field: str
    description: str


class CheckpointError(Exception):
    """Base of every error the service reports on purpose."""

    grpc_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    reason: str = "UNKNOWN"
    """The google.rpc.ErrorInfo reason: a stable UPPER_SNAKE identifier for programs."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def details(self) -> list[any_pb2.Any]:
        """Rich google.rpc details for this error; the ErrorInfo is always there."""
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason=self.reason, domain=ERROR_DOMAIN))
        return [info]

    def to_rpc_status(self) -> grpc.Status:
        """The gRPC status (code, message, grpc-status-details-bin) for this error."""
        status = status_pb2.Status(
            code=_CODE_NUMBERS[self.grpc_code], message=self.message, details=self.details()
        )
        return rpc_status.to_status(status)


class InvalidArgument(CheckpointError, ValueError):
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    def __init__(self, message: str, violations: Sequence[FieldViolation] = ()) -> None:
        super().__init__(message)
        self.violations = tuple(violations)

    @classmethod
    def for_field(cls, field: str, description: str) -> InvalidArgument:
        """One violation, with the message naming the field."""
        return cls(f"{field}: {description}", [FieldViolation(field, description)])

    def details(self) -> list[any_pb2.Any]:
        details = super().details()
        if self.violations:
            bad_request = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in self.violations
                ]
            )
            packed = any_pb2.Any()
            packed.Pack(bad_request)
            details.append(packed)
        return details


class NotFound(CheckpointError, LookupError):
    grpc_code = grpc.StatusCode.NOT_FOUND
    reason = "CHECKPOINT_NOT_FOUND"


class AlreadyExists(CheckpointError):
    grpc_code = grpc.StatusCode.ALREADY_EXISTS
    reason = "DISPLAY_NAME_TAKEN"


class FailedPrecondition(CheckpointError):
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "INVALID_STATE_TRANSITION"


class Aborted(CheckpointError):
    grpc_code = grpc.StatusCode.ABORTED
    reason = "ETAG_MISMATCH"


class RequestInProgress(Aborted):
    """A retry of an idempotent create (request_id) while the first call is still running."""

    reason = "REQUEST_IN_PROGRESS"


class Unauthenticated(CheckpointError):
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class PermissionDenied(CheckpointError):
    grpc_code = grpc.StatusCode.PERMISSION_DENIED
    reason = "MISSING_SCOPE"


class OutOfRange(CheckpointError):
    grpc_code = grpc.StatusCode.OUT_OF_RANGE
    reason = "RESUME_TOKEN_EXPIRED"


class RateLimited(CheckpointError):
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RATE_LIMITED"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def details(self) -> list[any_pb2.Any]:
        details = super().details()
        whole = math.floor(self.retry_after)
        delay = duration_pb2.Duration(
            seconds=whole, nanos=int((self.retry_after - whole) * 1_000_000_000)
        )
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        details.append(packed)
        return details


class TooManyWatchers(RateLimited):
    reason = "TOO_MANY_WATCHERS"


class Unavailable(CheckpointError):
    grpc_code = grpc.StatusCode.UNAVAILABLE
    reason = "STORE_UNAVAILABLE"


def missing_extra(
    exc: ImportError, what: str, extra: str, drivers: tuple[str, ...]
) -> InvalidArgument | None:
    """The error for a backend whose driver is not installed, naming the extra that installs it.

    None when exc is about another module than drivers (a bug to re-raise, not a missing extra).
    An ImportError naming no module counts as the driver's: psycopg raises one without libpq.
    """
    if exc.name is not None and exc.name.split(".", 1)[0] not in drivers:
        return None
    return InvalidArgument(
        f"{what} needs the {extra} extra: pip install 'checkpoint-metadata[{extra}]' ({exc})"
    )


# grpc.StatusCode values are (number, name) pairs; google.rpc.Status wants the number.
_CODE_NUMBERS: dict[grpc.StatusCode, int] = {code: code.value[0] for code in grpc.StatusCode}
