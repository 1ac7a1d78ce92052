"""Trace ids when nothing records: hex strings in a context variable, no span objects; and the
request ids both halves make when the caller sent none.

Without an exporter (rest_bridge.tracing installs `IdsOnlyTracerProvider`) a span would record
nothing; all a request or call needs of tracing is its ids, for its access line and the
traceparent it passes on. The bridge's `HttpObserver` then keeps a `TraceIds` current instead of
an OpenTelemetry span and context (about a tenth of the cost), rest_bridge.traced_channel sends
its traceparent, and the server's call observer takes its call's ids from `continue_trace`.
A plain version-00 traceparent is read here; anything else goes through the W3C propagator, so
the ids are the ones the OpenTelemetry path would have continued.
"""

from __future__ import annotations

import random
import re
from contextvars import ContextVar
from typing import NamedTuple

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
_propagator = TraceContextTextMapPropagator()


class TraceIds(NamedTuple):
    trace_id: str
    span_id: str
    flags: str
    """The caller's trace flags (two hex digits), 00 at a root."""
    state: str
    """The caller's tracestate header, passed on as it came ("" for none)."""

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


CURRENT: ContextVar[TraceIds | None] = ContextVar("checkpoint_trace_ids", default=None)
"""The running request's ids, when nothing records (None otherwise, or outside a request)."""


_answer: list[object] = [None, False]
"""The last provider asked about and its answer (isinstance on the API's ABCs is not cheap)."""


def records_nothing() -> bool:
    """Whether the process's tracer provider records no span (no exporter is configured)."""
    provider = trace.get_tracer_provider()
    if provider is not _answer[0]:
        _answer[:] = [provider, isinstance(provider, trace.NoOpTracerProvider)]
    return _answer[1] is True


def new_span_id() -> str:
    # random, as the SDK's RandomIdGenerator: ids need to be unique, not secret. to_bytes().hex()
    # writes the same zero-padded lowercase digits as f"{n:016x}" at under half its cost.
    return (random.getrandbits(64) or 1).to_bytes(8, "big").hex()


def new_trace_id() -> str:
    return (random.getrandbits(128) or 1).to_bytes(16, "big").hex()


def new_request_id() -> str:
    """A fresh x-request-id for either half: 32 random hex digits, as `os.urandom(16).hex()`
    wrote them, without its system call per request. Request ids need to be unique, not
    secret, as span ids (random reseeds in a forked child)."""
    return random.getrandbits(128).to_bytes(16, "big").hex()


def continue_trace(traceparent: str | None, tracestate: str | None) -> TraceIds:
    """A new span's ids under the caller's trace context, or at the root of a new trace."""
    found = _TRACEPARENT.fullmatch(traceparent) if traceparent and not tracestate else None
    if found is not None:
        trace_id, span_id, flags = found.groups()
        if trace_id != _ZERO_TRACE and span_id != _ZERO_SPAN:
            return TraceIds(trace_id, new_span_id(), flags, "")
    elif traceparent:
        carrier = {"traceparent": traceparent}
        if tracestate:
            carrier["tracestate"] = tracestate
        parent = trace.get_current_span(_propagator.extract(carrier)).get_span_context()
        if parent.is_valid:
            return TraceIds(
                f"{parent.trace_id:032x}",
                new_span_id(),
                f"{parent.trace_flags:02x}",
                parent.trace_state.to_header(),
            )
    return TraceIds(new_trace_id(), new_span_id(), "00", "")
