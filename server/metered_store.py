"""A Store that times each operation into checkpoint_store_operation_seconds.

A proxy around any backend, so the backends stay free of instrumentation and the same numbers
come from SQLite and PostgreSQL. Failures the store raises because it could not answer
(UNAVAILABLE, INTERNAL, or anything that is not a CheckpointError) also count in
checkpoint_store_errors_total; NotFound, AlreadyExists and an etag mismatch are answers.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import TypeVar

import grpc

from server.errors import CheckpointError
from server.metrics import ServerMetrics
from server.observed_store import ObservedStore, backend_name
from server.store import Store

__all__ = ["MeteredStore", "backend_name"]

_T = TypeVar("_T")

ANSWERS = frozenset(
    {
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
    }
)
"""Codes of store errors that are the store's answer about the data, not its failure."""


OPERATIONS = (
    "get",
    "list",
    "create",
    "update",
    "delete",
    "import",
    "secret",
    "ping",
    "claim_request",
    "release_request",
    "purge_requests",
)
"""The operation label's values: one series each, made once."""


class MeteredStore(ObservedStore):
    def __init__(self, store: Store, metrics: ServerMetrics, backend: str) -> None:
        super().__init__(store)
        self._seconds = {op: metrics.store_seconds.labels(op, backend) for op in OPERATIONS}
        self._errors = metrics.store_errors
        self._backend = backend

    async def observe(self, operation: str, pending: Awaitable[_T]) -> _T:
        began = time.perf_counter()
        try:
            return await pending
        except CheckpointError as exc:
            if exc.grpc_code not in ANSWERS:
                self._errors.labels(operation, self._backend).inc()
            raise
        except Exception:
            self._errors.labels(operation, self._backend).inc()
            raise
        finally:
            self._seconds[operation].observe(time.perf_counter() - began)
