"""A Store that times each operation into checkpoint_store_operation_seconds.

A proxy around any backend, so the backends stay free of instrumentation and the same numbers
come from SQLite and PostgreSQL. Failures the store raises because it could not answer
(UNAVAILABLE, INTERNAL, or anything that is not a CheckpointError) also count in
checkpoint_store_errors_total; NotFound, AlreadyExists and an etag mismatch are answers.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

import grpc

from server.domain import Checkpoint, Lookup, State
from server.errors import CheckpointError
from server.metrics import ServerMetrics
from server.store import Change, Changes, Completion, RequestKey, Snapshot, Store

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


def backend_name(url: str) -> str:
    """The backend label of a database URL: sqlite or postgresql."""
    scheme = url.split(":", 1)[0].lower()
    return "postgresql" if scheme == "postgres" else scheme


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


class MeteredStore:
    def __init__(self, store: Store, metrics: ServerMetrics, backend: str) -> None:
        self._store = store
        self._seconds = {op: metrics.store_seconds.labels(op, backend) for op in OPERATIONS}
        self._errors = metrics.store_errors
        self._backend = backend

    async def _timed(self, operation: str, pending: Awaitable[_T]) -> _T:
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

    async def get(self, lookup: Lookup) -> Checkpoint:
        return await self._timed("get", self._store.get(lookup))

    async def list(
        self, *, state: State | None, after: int, limit: int
    ) -> list[tuple[int, Checkpoint]]:
        return await self._timed("list", self._store.list(state=state, after=after, limit=limit))

    async def create(
        self, checkpoint: Checkpoint, completes: Completion | None = None
    ) -> Checkpoint:
        return await self._timed("create", self._store.create(checkpoint, completes))

    async def claim_request(
        self, key: RequestKey, now: datetime, *, ttl: timedelta, lease: timedelta
    ) -> bytes | None:
        return await self._timed(
            "claim_request", self._store.claim_request(key, now, ttl=ttl, lease=lease)
        )

    async def release_request(self, key: RequestKey) -> None:
        await self._timed("release_request", self._store.release_request(key))

    async def snapshot(self, state: State | None, checkpoint_id: str | None) -> Snapshot:
        return await self._store.snapshot(state, checkpoint_id)

    async def changes_after(self, after: int, limit: int) -> Changes:
        return await self._store.changes_after(after, limit)

    async def wait_for_change(self) -> None:
        await self._store.wait_for_change()

    async def purge_requests(self, now: datetime) -> int:
        return await self._timed("purge_requests", self._store.purge_requests(now))

    async def update(self, lookup: Lookup, change: Change) -> Checkpoint:
        return await self._timed("update", self._store.update(lookup, change))

    async def delete(self, lookup: Lookup, expected_etag: str) -> Checkpoint:
        return await self._timed("delete", self._store.delete(lookup, expected_etag))

    async def import_many(self, checkpoints: Sequence[Checkpoint]) -> int:
        return await self._timed("import", self._store.import_many(checkpoints))

    async def secret(self, name: str) -> bytes:
        return await self._timed("secret", self._store.secret(name))

    async def ping(self) -> None:
        await self._timed("ping", self._store.ping())

    async def close(self) -> None:
        await self._store.close()
