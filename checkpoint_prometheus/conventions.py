"""go-grpc-prometheus's label names and values, so its dashboards and alerts apply as they are.

grpc_code is Go's codes.Code.String() ("OK", "NotFound", "Canceled" with one l), not Python's
enum name; the buckets are Go's prometheus.DefBuckets, which go-grpc-prometheus uses.
"""

from __future__ import annotations

import grpc

GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")
UNARY = "unary"
SERVER_STREAM = "server_stream"
GO_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

GO_CODE_NAMES: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.OK: "OK",
    grpc.StatusCode.CANCELLED: "Canceled",
    grpc.StatusCode.UNKNOWN: "Unknown",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    grpc.StatusCode.ABORTED: "Aborted",
    grpc.StatusCode.OUT_OF_RANGE: "OutOfRange",
    grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    grpc.StatusCode.INTERNAL: "Internal",
    grpc.StatusCode.UNAVAILABLE: "Unavailable",
    grpc.StatusCode.DATA_LOSS: "DataLoss",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
}


def code_name(code: grpc.StatusCode | None) -> str:
    """The grpc_code label of a status; a call that set none ended OK (as in grpc-go)."""
    return "OK" if code is None else GO_CODE_NAMES.get(code, "Unknown")


def split_method(full_method: str) -> tuple[str, str]:
    """grpc_service and grpc_method of "/package.Service/Method"."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service or "unknown", method
