"""Each store operation as a span, child of the call's span (server.call_observer).

`TracedStore` wraps any Store: its data operations each run in an INTERNAL span named
`store <operation>` with the backend and operation as attributes; an error raised by the store
is recorded on its span. Under a call span that records nothing (not sampled, or no exporter)
no store span is made at all. ping (the health watcher's, once a second, outside any call),
secret and close are not traced.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from server.domain import Checkpoint, Lookup
from server.observed_store import ObservedStore, backend_name
from server.store import Store

_T = TypeVar("_T")
_tracer = trace.get_tracer("server.store")
UNTRACED = frozenset({"ping", "secret"})
SPAN_NAMES = {"import": "import_many"}
"""Operation -> its span's name where they differ (the Store method's name)."""


def traced_store(store: Store, database_url: str) -> Store:
    """store with its operations traced, named after the backend the URL picks."""
    return TracedStore(store, backend_name(database_url))


class TracedStore(ObservedStore):
    def __init__(self, inner: Store, backend: str) -> None:
        super().__init__(inner)
        self._backend = backend

    async def get(self, lookup: Lookup) -> Checkpoint:
        # The read of every GetCheckpoint: the same check as observe, without its coroutine.
        if not trace.get_current_span().is_recording():
            return await self._inner.get(lookup)
        return await self._traced("get", self._inner.get(lookup))

    async def observe(self, operation: str, pending: Awaitable[_T]) -> _T:
        # Untraced, or the call is not sampled (or nothing exports): its store span would be
        # dropped too. Checked here, not in _traced: one coroutine less on every such call.
        if operation in UNTRACED or not trace.get_current_span().is_recording():
            return await pending
        return await self._traced(SPAN_NAMES.get(operation, operation), pending)

    async def _traced(self, operation: str, work: Awaitable[_T]) -> _T:
        span = _tracer.start_span(
            f"store {operation}",
            kind=SpanKind.INTERNAL,
            attributes={"db.system.name": self._backend, "db.operation.name": operation},
        )
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
            span.end()
