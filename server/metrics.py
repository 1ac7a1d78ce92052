"""The server's Prometheus metrics: every CheckpointService call, the rate limit, the store.

Names and semantics are go-grpc-prometheus's (grpc_server_started_total, _handled_total and the
_handling_seconds histogram, which carries no grpc_code label there either), so its dashboards
work. A call is counted around the call guard, so one refused by auth or the rate limit is
counted with its code; health and reflection are not counted (docs/decisions.md). Calls that
grpcio refuses before any handler runs (--max-concurrent-rpcs) are not seen here either.

Built only with --metrics-listen: without it the guard, the limiter and the store run bare.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from prometheus_client import CollectorRegistry

from checkpoint_prometheus import (
    GO_BUCKETS,
    GRPC_LABELS,
    SERVER_STREAM,
    UNARY,
    CallSeries,
    code_name,
)
from checkpoint_prometheus.families import Counter, Histogram
from server.errors import RateLimited
from server.ratelimit import Limiter

StreamBehavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]

STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Store operations are sub-millisecond on SQLite: Go's buckets would put them all in the first."""


class ServerMetrics:
    """The server's metric families, registered on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter(
            "grpc_server_started",
            "Total number of RPCs started on the server.",
            GRPC_LABELS,
            registry=registry,
        )
        self.handled = Counter(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            (*GRPC_LABELS, "grpc_code"),
            registry=registry,
        )
        self.handling = Histogram(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level "
            "handled by the server.",
            GRPC_LABELS,
            buckets=GO_BUCKETS,
            registry=registry,
        )
        self.rate_limited = Counter(
            "checkpoint_rate_limited",
            "Calls refused by the per-token rate limit (RESOURCE_EXHAUSTED with RetryInfo).",
            ("token_name",),
            registry=registry,
        )
        self.store_seconds = Histogram(
            "checkpoint_store_operation_seconds",
            "Time of each store operation, successful or not.",
            ("operation", "backend"),
            buckets=STORE_BUCKETS,
            registry=registry,
        )
        self.store_errors = Counter(
            "checkpoint_store_errors",
            "Store operations that failed because the store could not answer (not NotFound, "
            "AlreadyExists or an etag mismatch, which are answers).",
            ("operation", "backend"),
            registry=registry,
        )

    def unary_series(self, full_method: str) -> CallSeries:
        """The series of unary calls of full_method, counted by server.call_observer (no
        coroutine of its own around each call: 4 000 instructions less, callgrind)."""
        return CallSeries(self.started, self.handled, self.handling, UNARY, full_method)

    def observe_stream(self, full_method: str, behavior: StreamBehavior) -> StreamBehavior:
        """behavior, counted and timed as one server stream of full_method, from its start to
        its end (go-grpc-prometheus times a stream's whole life the same way)."""
        series = CallSeries(self.started, self.handled, self.handling, SERVER_STREAM, full_method)
        started, finish = series.started, series.finish

        async def observed(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            started.inc()
            began = time.perf_counter()
            try:
                async for response in behavior(request, context):
                    yield response
            except BaseException as err:
                finish(ended_code(err, context), began)
                raise
            finish(code_name(context.code()), began)

        return observed

    def count_refusals(self, limiter: Limiter) -> Limiter:
        """limiter, counting in checkpoint_rate_limited_total each call it refuses."""
        return _CountingLimiter(limiter, self.rate_limited)


def ended_code(err: BaseException, context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The grpc_code label of a call that raised err, as a client sees it."""
    if isinstance(err, grpc.aio.AbortError):
        return code_name(context.code())
    if isinstance(err, (asyncio.CancelledError, GeneratorExit)):  # the client went away
        remaining = context.time_remaining()
        return "DeadlineExceeded" if remaining is not None and remaining <= 0 else "Canceled"
    return "Unknown"


class _CountingLimiter:
    def __init__(self, limiter: Limiter, refused: Counter) -> None:
        self._limiter, self._refused = limiter, refused

    async def acquire(self, key: str) -> None:
        try:
            await self._limiter.acquire(key)
        except RateLimited:
            self._refused.labels(key).inc()
            raise

    async def aclose(self) -> None:
        await self._limiter.aclose()
