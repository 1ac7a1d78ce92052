"""The bridge's Prometheus metrics: each HTTP request, and each upstream gRPC call it makes.

HTTP names are OpenTelemetry's semantic conventions in Prometheus form
(http.server.request.duration -> http_server_request_duration_seconds, attribute dots as
underscores, its advised buckets); upstream calls use go-grpc-prometheus's client names. The
route label is the template the transcoder matched (scope[ROUTE_KEY]), the bridge's own path for
/healthz, /readyz and /openapi.json, and UNMATCHED for any other path, so a scanner walking random
paths cannot grow the number of series. Unknown methods are "_OTHER", as the conventions say.

Built only with --metrics-listen; the in-process bridge (serve --rest-listen) records into the
server's registry, so one scrape shows both.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections.abc import Callable, Generator
from typing import Any

import grpc
from prometheus_client import CollectorRegistry
from starlette.types import Scope

from checkpoint_prometheus import (
    GO_BUCKETS,
    GRPC_LABELS,
    SERVER_STREAM,
    UNARY,
    CallSeries,
    code_name,
)
from checkpoint_prometheus.families import Counter, Gauge, Histogram, HistogramChild
from rest_bridge.access_log import UNMATCHED_ROUTE
from rest_bridge.upstream_call import UnaryCall

"""The ASGI scope key where the transcoder leaves the template of the route it matched."""
UNMATCHED = "_OTHER"
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)
OTEL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
"""The explicit bucket boundaries the conventions advise for http.server.request.duration."""


class BridgeMetrics:
    """The bridge's metric families, registered on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.duration = Histogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests.",
            ("http_request_method", "http_route", "http_response_status_code"),
            buckets=OTEL_BUCKETS,
            registry=registry,
        )
        self.active = Gauge(
            "http_server_active_requests",
            "Number of active HTTP server requests.",
            ("http_request_method",),
            registry=registry,
        )
        self.client_started = Counter(
            "grpc_client_started",
            "Total number of RPCs started on the client.",
            GRPC_LABELS,
            registry=registry,
        )
        self.client_handled = Counter(
            "grpc_client_handled",
            "Total number of RPCs completed by the client, regardless of success or failure.",
            (*GRPC_LABELS, "grpc_code"),
            registry=registry,
        )
        self.client_handling = Histogram(
            "grpc_client_handling_seconds",
            "Histogram of response latency (seconds) of the gRPC until it is finished by the "
            "application.",
            GRPC_LABELS,
            buckets=GO_BUCKETS,
            registry=registry,
        )

    def http_meter(self) -> HttpMeter:
        """What times and counts each HTTP request by method, route and status."""
        return HttpMeter(self)

    def client_call(
        self, full_method: str, call: Callable[..., Any], streaming: bool = False
    ) -> UnaryCall:
        """call (a multicallable), counted and timed as an upstream call of full_method."""
        if streaming:
            return self._client_stream(full_method, call)
        series = self._series(UNARY, full_method)

        def observed(request: Any, **kwargs: Any) -> MeasuredCall:
            return MeasuredCall(call(request, **kwargs), series)

        return observed

    def _series(self, grpc_type: str, full_method: str) -> CallSeries:
        return CallSeries(
            self.client_started, self.client_handled, self.client_handling, grpc_type, full_method
        )

    def _client_stream(self, full_method: str, call: Callable[..., Any]) -> UnaryCall:
        """call (a server-streaming multicallable), counted as go-grpc-prometheus counts a
        client stream: started when it opens, handled with its code and timed when it ends
        (by the client's cancel too: Canceled), so a watch is one call over its whole life."""
        series = self._series(SERVER_STREAM, full_method)
        started, finish = series.started, series.finish
        recording: set[asyncio.Task[None]] = set()

        async def record(ended: Any, began: float) -> None:
            finish("Canceled" if ended.cancelled() else code_name(await ended.code()), began)

        def done(ended: Any, began: float) -> None:
            task = asyncio.ensure_future(record(ended, began))
            recording.add(task)  # held until it ran: the loop keeps only a weak reference
            task.add_done_callback(recording.discard)

        def opened(request: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            inner = call(request, **kwargs)
            started.inc()
            inner.add_done_callback(lambda ended: done(ended, began))
            return inner

        return opened


class MeasuredCall:
    """An upstream unary call counted and timed in series while it is awaited; its metadata
    questions go to the call. Awaiting it runs the call's own `__await__` inside this one, with
    no coroutine between (an ObservedCall around a measuring coroutine cost 10 000 instructions
    a call against 4 000, callgrind)."""

    __slots__ = ("_call", "_series")

    def __init__(self, call: Any, series: CallSeries) -> None:
        self._call, self._series = call, series

    def __await__(self) -> Generator[Any, None, Any]:
        series = self._series
        series.started.value += 1.0
        began = time.perf_counter()
        code = "Unknown"
        try:
            reply = yield from self._call.__await__()
            code = "OK"
            return reply
        except grpc.RpcError as exc:
            code = code_name(exc.code())
            raise
        finally:
            series.finish(code, began)

    async def trailing_metadata(self) -> Any:
        return await self._call.trailing_metadata()

    async def initial_metadata(self) -> Any:
        return await self._call.initial_metadata()


class HttpMeter:
    """Each HTTP request's figures, taken by rest_bridge.http_observer at the request's start and
    end: one observer for the span, the access line and the metrics (as a middleware of its own,
    with a send wrapper of its own, they cost 5 000 instructions more a request, callgrind)."""

    __slots__ = ("_active", "_duration", "_series")

    def __init__(self, metrics: BridgeMetrics) -> None:
        self._duration = metrics.duration
        self._series: dict[tuple[str, str, int], HistogramChild] = {}
        self._active = {m: metrics.active.labels(m) for m in (*KNOWN_METHODS, "_OTHER")}

    def begin(self, scope: Scope) -> str:
        """A request starts: it is active, under the method label returned."""
        method: str = scope["method"]
        if method not in KNOWN_METHODS:
            method = "_OTHER"
        self._active[method].value += 1.0  # the gauge's inc, inline (as below)
        return method

    def end(self, method: str, route: str, status: int, elapsed: float) -> None:
        """It ended after elapsed seconds with status (0: it never answered, counted as 500);
        route as the access line names it (rest_bridge.http_observer), UNMATCHED_ROUTE here
        the conventions' UNMATCHED."""
        self._active[method].value -= 1.0
        key = (method, route, status or 500)
        series = self._series.get(key)
        if series is None:
            label = UNMATCHED if route == UNMATCHED_ROUTE else route
            series = self._series[key] = self._duration.labels(method, label, str(key[2]))
        series.counts[bisect_left(series.bounds, elapsed)] += 1
        series.sum += elapsed
