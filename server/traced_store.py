"""Each store operation as a span, child of the call's span (server.call_observer).

`TracedStore` wraps any Store: get, list, create, update, delete and import_many each run in an
INTERNAL span named `store <operation>` with the backend and operation as attributes; an error
raised by the store is recorded on its span. Under a call span that records nothing (not
sampled, or no exporter) no store span is made at all. ping (the health watcher's, once a
second, outside any call), secret and close are not traced.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from server.domain import Checkpoint, Lookup, State
from server.store import Change, Changes, Completion, RequestKey, Snapshot, Store

_T = TypeVar("_T")
_tracer = trace.get_tracer("server.store")
BACKENDS = {"sqlite": "sqlite", "postgresql": "postgresql", "postgres": "postgresql"}
"""Database URL scheme -> the db.system.name attribute (OpenTelemetry's names)."""


def traced_store(store: Store, database_url: str) -> Store:
    """store with its operations traced, named after the backend the URL picks."""
    backend = BACKENDS.get(database_url.split(":", 1)[0].lower(), "other_sql")
    return TracedStore(store, backend)


class TracedStore:
    def __init__(self, inner: Store, backend: str) -> None:
        self._inner, self._backend = inner, backend

    async def _traced(self, operation: str, work: Awaitable[_T]) -> _T:
        if not trace.get_current_span().is_recording():
            # The call is not sampled (or nothing exports): its store span would be dropped too.
            return await work
        span = _tracer.start_span(f"store {operation}", kind=SpanKind.INTERNAL)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            return await work
        except Exception as exc:
            if span.is_recording():
                span.record_exception(exc)
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
            raise
        finally:
            otel_context.detach(token)
            if span.is_recording():
                span.set_attributes(
                    {"db.system.name": self._backend, "db.operation.name": operation}
                )
            span.end()

    async def get(self, lookup: Lookup) -> Checkpoint:
        return await self._traced("get", self._inner.get(lookup))

    async def list(
        self, *, state: State | None, after: int, limit: int
    ) -> list[tuple[int, Checkpoint]]:
        return await self._traced("list", self._inner.list(state=state, after=after, limit=limit))

    async def create(
        self, checkpoint: Checkpoint, completes: Completion | None = None
    ) -> Checkpoint:
        return await self._traced("create", self._inner.create(checkpoint, completes))

    async def claim_request(
        self, key: RequestKey, now: datetime, *, ttl: timedelta, lease: timedelta
    ) -> bytes | None:
        return await self._traced(
            "claim_request", self._inner.claim_request(key, now, ttl=ttl, lease=lease)
        )

    async def release_request(self, key: RequestKey) -> None:
        await self._traced("release_request", self._inner.release_request(key))

    async def snapshot(self, state: State | None, checkpoint_id: str | None) -> Snapshot:
        return await self._inner.snapshot(state, checkpoint_id)

    async def changes_after(self, after: int, limit: int) -> Changes:
        return await self._inner.changes_after(after, limit)

    async def wait_for_change(self) -> None:
        await self._inner.wait_for_change()

    async def purge_requests(self, now: datetime) -> int:
        return await self._traced("purge_requests", self._inner.purge_requests(now))

    async def update(self, lookup: Lookup, change: Change) -> Checkpoint:
        return await self._traced("update", self._inner.update(lookup, change))

    async def delete(self, lookup: Lookup, expected_etag: str) -> Checkpoint:
        return await self._traced("delete", self._inner.delete(lookup, expected_etag))

    async def import_many(self, checkpoints: Sequence[Checkpoint]) -> int:
        return await self._traced("import_many", self._inner.import_many(checkpoints))

    async def secret(self, name: str) -> bytes:
        return await self._inner.secret(name)

    async def ping(self) -> None:
        await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()
