"""The bridge's upstream calls as client spans, their context passed on as `traceparent` metadata.

`traced_channel` wraps whichever grpc.aio channel the bridge is given (the network one of
`checkpoint-rest-bridge`, the in-process one of `serve --rest-listen`): each unary call is a
CLIENT span, child of the HTTP request's span, and the server continues the trace from the
traceparent (and tracestate) it receives. Only unary_unary is wrapped; that is all the bridge
calls. The span records the call's gRPC status; an error status marks it as failed. Without
client spans (the in-process channel: no hop between the two sides of the call for a span of
its own to measure) the request's span context is sent instead, so the server's span is the
HTTP request span's child.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import grpc
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from checkpoint_tracing.ids import CURRENT
from rest_bridge.upstream_call import Call, ObservedCall

_tracer = trace.get_tracer("rest_bridge")


def traced_channel(channel: grpc.aio.Channel, *, client_spans: bool = True) -> grpc.aio.Channel:
    """channel with its unary calls' trace context sent as metadata, each call a client span
    of its own when client_spans."""
    return cast(grpc.aio.Channel, _TracedChannel(channel, client_spans))


def traceparent(ids: trace.SpanContext) -> str:
    """The W3C traceparent header of a span context."""
    return f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{ids.trace_flags:02x}"


class _TracedChannel:
    def __init__(self, channel: grpc.aio.Channel, client_spans: bool) -> None:
        self._channel = channel
        self._client_spans = client_spans

    def unary_unary(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        inner = self._channel.unary_unary(
            method,
            request_serializer=request_serializer,
            response_deserializer=response_deserializer,
        )
        traced = _TracedUnary(inner, method, self._client_spans)
        return cast(grpc.aio.UnaryUnaryMultiCallable[Any, Any], traced)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)


class _TracedUnary:
    def __init__(
        self, inner: grpc.aio.UnaryUnaryMultiCallable[Any, Any], method: str, client_spans: bool
    ) -> None:
        self._inner = inner
        self._client_spans = client_spans
        self._name = method.lstrip("/")
        service, _, rpc = self._name.partition("/")
        self._attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": rpc}

    def __call__(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Any = None,
        **kwargs: Any,
    ) -> Call:
        pairs: tuple[Any, ...] = tuple(metadata) if metadata else ()
        plain = CURRENT.get()
        if plain is not None:  # nothing records: the server continues the request's ids
            pairs += (("traceparent", plain.traceparent),)
            if plain.state:
                pairs += (("tracestate", plain.state),)
            inner: Call = self._inner(request, timeout=timeout, metadata=pairs, **kwargs)
            return inner
        current = trace.get_current_span()
        # Under a request span that records nothing (not sampled, or no exporter) the call's
        # span would record nothing either: the server continues the request's span instead.
        span = (
            _tracer.start_span(self._name, kind=SpanKind.CLIENT, attributes=self._attributes)
            if self._client_spans and current.is_recording()
            else current
        )
        ids = span.get_span_context()
        if ids.is_valid:  # only without a tracer provider (unit tests) is there none
            pairs += (("traceparent", traceparent(ids)),)
            if ids.trace_state:
                pairs += (("tracestate", ids.trace_state.to_header()),)
        call = self._inner(request, timeout=timeout, metadata=pairs, **kwargs)
        if span is current:
            return call
        return ObservedCall(call, self._finish(call, span))

    async def _finish(self, inner: Any, span: Any) -> Any:
        code = grpc.StatusCode.OK
        try:
            return await inner
        except grpc.RpcError as exc:
            code = cast(grpc.aio.AioRpcError, exc).code()
            raise
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code is not grpc.StatusCode.OK:
                span.set_status(Status(StatusCode.ERROR, code.name))
            span.end()
