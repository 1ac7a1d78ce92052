"""Around every unary gRPC call: its server span, the x-request-id it answers with, its access line.

`observed` wraps a method's behavior (server.guard applies it to every unary method, guarded or
open, on the gRPC port and in-process alike). It continues the trace of the caller's traceparent
metadata (the bridge sends one) or starts one, keeps the span current while the call runs so the
store's spans are its children, sends the request id (the caller's x-request-id when it is a sane
token, else a new one) in the response's initial metadata, and writes the access line. The guard
tells it the token's name with `note_token`. When the tracer provider records nothing (a
NoOpTracerProvider: rest_bridge.tracing installs one when no exporter is configured) there is no
span at all: the call keeps the caller's trace id and a new span id as strings, for its line.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from checkpoint_prometheus import CallSeries, code_name
from checkpoint_tracing.ids import continue_trace, new_request_id, records_nothing
from server.access_log import write_call
from server.metrics import ended_code

Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]

_tracer = trace.get_tracer("server")
_propagator = TraceContextTextMapPropagator()
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
_TRACE_KEYS = frozenset({"traceparent", "tracestate"})
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
# Codes that are the server's fault (OpenTelemetry's rule for gRPC server spans).
SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


class _Call:
    __slots__ = ("context", "metadata", "request_id", "token_name")

    def __init__(self, request_id: str, context: object, metadata: Any) -> None:
        self.request_id = request_id
        self.token_name: str | None = None
        self.context, self.metadata = context, metadata


_current: ContextVar[_Call | None] = ContextVar("checkpoint_call", default=None)


def note_token(name: str) -> None:
    """Name the caller of the running call (its token's name) in the access line."""
    call = _current.get()
    if call is not None:
        call.token_name = name


def call_metadata(context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    """context's invocation metadata, as the observer of its call read it: grpc.aio builds a new
    tuple on every invocation_metadata(), so the guard reads the observer's."""
    call = _current.get()
    if call is not None and call.context is context:
        return call.metadata
    return context.invocation_metadata() or ()


def current_caller() -> str:
    """The token name of the running call ("" outside one, or before its guard named it): what
    the guard noted, read where a servicer needs the caller (idempotency keys), so the guard
    sets no context variable of its own around every call."""
    call = _current.get()
    return "" if call is None or call.token_name is None else call.token_name


def current_request_id() -> str | None:
    """The request id of the running call, for log lines written during it."""
    call = _current.get()
    return None if call is None else call.request_id


def observed(method: str, behavior: Behavior, series: CallSeries | None = None) -> Behavior:
    """behavior with a span, the x-request-id answer and an access line around each call, and
    counted and timed in series (ServerMetrics.unary_series) when metrics are on."""
    name = method.lstrip("/")
    service, _, rpc = name.partition("/")
    attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": rpc}

    async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started = time.perf_counter()
        metadata = context.invocation_metadata() or ()
        given, carrier = _read(metadata)
        rid = given if given is not None and _REQUEST_ID.fullmatch(given) else new_request_id()
        span: trace.Span | None = None
        if records_nothing():
            # Nothing records (no exporter): ids only, no span, nothing made current, so the
            # store makes no span either (server.traced_store).
            own = continue_trace(carrier.get("traceparent"), carrier.get("tracestate"))
            ids: tuple[str, str] | None = (own.trace_id, own.span_id)
        else:
            parent = _parent(carrier) if carrier else None
            span = _tracer.start_span(
                name, context=parent, kind=SpanKind.SERVER, attributes=attributes
            )
            token = otel_context.attach(trace.set_span_in_context(span))
        call = _Call(rid, context, metadata)
        current = _current.set(call)
        failure: BaseException | None = None
        try:
            await context.send_initial_metadata((("x-request-id", rid),))
            if series is None:
                return await behavior(request, context)
            series.started.value += 1.0  # the counter's inc, inline
            began = time.perf_counter()
            try:
                reply = await behavior(request, context)
            except BaseException as err:
                series.finish(ended_code(err, context), began)
                raise
            series.finish(code_name(context.code()), began)
            return reply
        except BaseException as exc:
            failure = exc
            raise
        finally:
            _current.reset(current)
            code = _code(context, failure)
            if span is not None:
                otel_context.detach(token)
                if span.is_recording():
                    _describe(span, code, failure, rid)
                span.end()
                made = span.get_span_context()
                ids = (f"{made.trace_id:032x}", f"{made.span_id:016x}") if made.is_valid else None
            write_call(
                grpc_method=method,
                grpc_code=code._name_,  # .name is a property lookup, ~10x slower per call
                peer=context.peer(),
                token_name=call.token_name,
                duration_ms=(time.perf_counter() - started) * 1000,
                request_id=rid,
                trace_id=None if ids is None else ids[0],
                span_id=None if ids is None else ids[1],
            )

    return run


def _read(metadata: Any) -> tuple[str | None, dict[str, str]]:
    """The caller's x-request-id (the first one) and its W3C trace context headers."""
    given: str | None = None
    carrier: dict[str, str] = {}
    for key, value in metadata:
        if key == "x-request-id":
            if given is None:
                given = str(value)
        elif key in _TRACE_KEYS:
            carrier[key] = str(value)
    return given, carrier


def _parent(carrier: dict[str, str]) -> otel_context.Context | None:
    """The caller's trace context: a plain version-00 traceparent (what the bridge sends) is read
    here, at a third of the propagator's cost; anything else goes through the propagator."""
    found = _TRACEPARENT.fullmatch(carrier.get("traceparent", "")) if len(carrier) == 1 else None
    if found is None:
        return _propagator.extract(carrier)
    trace_id, span_id, flags = found.groups()
    ids = SpanContext(int(trace_id, 16), int(span_id, 16), True, TraceFlags(int(flags, 16)))
    return trace.set_span_in_context(NonRecordingSpan(ids)) if ids.is_valid else None


def _code(context: grpc.aio.ServicerContext[Any, Any], failure: BaseException | None) -> Any:
    """The status the caller receives."""
    if failure is None or isinstance(failure, grpc.aio.AbortError):
        set_code = context.code()
        return set_code if isinstance(set_code, grpc.StatusCode) else grpc.StatusCode.OK
    if isinstance(failure, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN  # what grpc answers for an exception out of a handler


def _describe(
    span: trace.Span, code: grpc.StatusCode, failure: BaseException | None, rid: str
) -> None:
    span.set_attributes(  # once: each call takes the span's lock and checks values
        {"rpc.grpc.status_code": code.value[0], "rpc.grpc.request.metadata.x-request-id": (rid,)}
    )
    if code not in SERVER_ERRORS:
        return
    span.set_status(Status(StatusCode.ERROR, code.name))
    # An unexpected exception reaches the caller as an abort raised while handling it.
    cause = failure.__context__ if isinstance(failure, grpc.aio.AbortError) else failure
    if isinstance(cause, Exception):
        span.record_exception(cause)
