"""Around every HTTP request of the bridge: its server span and its access line.

`HttpObserver` wraps the bridge's ASGI entry point (rest_bridge.app), so the transcoded routes
and the bridge's own paths alike are observed, in both REST doors. It continues an incoming W3C
traceparent (or starts a trace), keeps the span current while the request runs, so the upstream
call is its child (rest_bridge.traced_channel), and on the way out reads what it needs from the
response itself: status, body size, the X-Request-Id sent, and the error envelope's code.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from checkpoint_tracing.ids import CURRENT, continue_trace, records_nothing
from rest_bridge.access_log import ROUTE_KEY, UNMATCHED_ROUTE, write_http
from rest_bridge.routes import RESERVED_PATHS

if TYPE_CHECKING:
    from rest_bridge.metrics import HttpMeter

_tracer = trace.get_tracer("rest_bridge")
_propagator = TraceContextTextMapPropagator()
_TRACE_HEADERS = {b"traceparent": "traceparent", b"tracestate": "tracestate"}


class _Exchange:
    """What the response said, gathered as it is sent."""

    __slots__ = ("bytes_out", "code", "request_id", "status")

    def __init__(self) -> None:
        self.status = 0
        self.bytes_out = 0
        self.code = ""
        self.request_id: str | None = None

    def relay(self, send: Send) -> Send:
        """send, with each message seen on its way out."""

        async def relayed(message: Message) -> None:
            self.see(message)
            await send(message)

        return relayed

    def see(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            for name, value in message.get("headers", ()):
                if name == b"x-request-id":
                    self.request_id = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            body: bytes = message.get("body", b"")
            self.bytes_out += len(body)
            if self.status >= 400 and not self.code and body:
                self.code = error_code(body)


def error_code(body: bytes) -> str:
    """The gRPC code name of an error envelope ({"error": {"code": "not_found"}} -> NOT_FOUND)."""
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "UNKNOWN"
    return str(code).upper()


class HttpObserver:
    """ASGI middleware: a SERVER span, one access line and (with a meter) the metrics of each
    HTTP request."""

    def __init__(self, app: ASGIApp, meter: HttpMeter | None = None) -> None:
        self._app, self._meter = app, meter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        metered = self._meter.begin(scope) if self._meter is not None else ""
        started = time.perf_counter()
        carrier: dict[str, str] = {}
        for name, value in scope["headers"]:
            key = _TRACE_HEADERS.get(name)
            if key is not None:
                carrier[key] = value.decode("latin-1")
        if records_nothing():
            await self._with_ids(scope, receive, send, carrier, (started, metered))
            return
        parent = _propagator.extract(carrier) if carrier else None
        method: str = scope["method"]
        span = _tracer.start_span(method, context=parent, kind=SpanKind.SERVER)
        token = otel_context.attach(trace.set_span_in_context(span))
        exchange = _Exchange()
        try:
            await self._app(scope, receive, exchange.relay(send))
        except BaseException as exc:
            span.record_exception(exc)
            exchange.status = exchange.status or 500
            raise
        finally:
            otel_context.detach(token)
            route, code = _outcome(scope, exchange)
            if span.is_recording():
                _describe(span, method, route, (exchange.status, code), exchange.request_id)
            span.end()
            ids = span.get_span_context()
            hex_ids = (f"{ids.trace_id:032x}", f"{ids.span_id:016x}") if ids.is_valid else None
            self._ended(scope, (route, code), exchange, (started, metered), hex_ids)

    async def _with_ids(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        carrier: dict[str, str],
        began: tuple[float, str],
    ) -> None:
        """The request when nothing records: its ids current, no span (checkpoint_tracing.ids)."""
        ids = continue_trace(carrier.get("traceparent"), carrier.get("tracestate"))
        token = CURRENT.set(ids)
        exchange = _Exchange()
        try:
            await self._app(scope, receive, exchange.relay(send))
        except BaseException:
            exchange.status = exchange.status or 500
            raise
        finally:
            CURRENT.reset(token)
            route, code = _outcome(scope, exchange)
            self._ended(scope, (route, code), exchange, began, (ids.trace_id, ids.span_id))

    def _ended(
        self,
        scope: Scope,
        outcome: tuple[str, str],
        exchange: _Exchange,
        began: tuple[float, str],
        ids: tuple[str, str] | None,
    ) -> None:
        """The request's metrics and access line; began: its perf_counter() at the start and
        the method label its meter gave it."""
        elapsed = time.perf_counter() - began[0]
        if self._meter is not None:
            self._meter.end(began[1], outcome[0], exchange.status, elapsed)
        _access_line(scope, outcome, exchange, elapsed, ids)


def _outcome(scope: Scope, exchange: _Exchange) -> tuple[str, str]:
    """The route template the request matched (bounded) and the gRPC code name it answered."""
    path: str = scope["path"]
    route: str = scope.get(ROUTE_KEY) or (path if path in RESERVED_PATHS else UNMATCHED_ROUTE)
    return route, exchange.code or ("OK" if exchange.status < 400 else "UNKNOWN")


def _access_line(
    scope: Scope,
    outcome: tuple[str, str],
    exchange: _Exchange,
    elapsed: float,
    ids: tuple[str, str] | None,
) -> None:
    """The request's access line: route and code, what was sent, trace and span id (hex)."""
    route, code = outcome
    trace_id, span_id = ids if ids is not None else (None, None)
    client: Any = scope.get("client")
    write_http(
        method=scope["method"],
        route=route,
        status=exchange.status,
        grpc_code=code,
        bytes_out=exchange.bytes_out,
        client=f"{client[0]}:{client[1]}" if client else None,
        duration_ms=elapsed * 1000,
        request_id=exchange.request_id,
        trace_id=trace_id,
        span_id=span_id,
    )


def _describe(
    span: trace.Span, method: str, route: str, outcome: tuple[int, str], rid: str | None
) -> None:
    """OpenTelemetry's HTTP server attributes; a 5xx marks the span as an error."""
    status, code = outcome
    span.update_name(f"{method} {route}")
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "http.route": route,
        "http.response.status_code": status,
        "checkpoint.grpc_code": code,
    }
    if rid:
        attributes["http.response.header.x-request-id"] = (rid,)
    if status >= 500:
        attributes["error.type"] = str(status)
        span.set_status(Status(StatusCode.ERROR, code))
    span.set_attributes(attributes)  # once: each call takes the span's lock and checks values
