"""What --metrics-listen adds to each request, in microseconds, measured in-process.

The rows with and without metrics move by 10-30 % between runs on a shared machine, more than
the cost they compare; this isolates it. Each wrapper the flag puts on the path (the server's
call observation and store timing, the bridge's HTTP meter and upstream-call meter) runs around
a no-op, and its time minus the bare no-op's is its cost (the server call's and the HTTP
meter's: their observer with the metrics minus the observer without, since server.call_observer
and rest_bridge.http_observer take them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from checkpoint_prometheus import new_registry
from rest_bridge.access_log import ROUTE_KEY
from rest_bridge.http_observer import HttpObserver
from rest_bridge.metrics import BridgeMetrics
from server.call_observer import observed
from server.domain import Checkpoint, Lookup
from server.local_context import LocalContext
from server.metered_store import MeteredStore
from server.metrics import ServerMetrics

METHOD = "/checkpoint.v1.CheckpointService/GetCheckpoint"


async def _per_call(make: Callable[[], Awaitable[Any]], rounds: int) -> float:
    """Best of three: seconds per awaited make()."""
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        for _ in range(rounds):
            await make()
        best = min(best, (time.perf_counter() - began) / rounds)
    return best


class _Store:
    async def get(self, lookup: Lookup) -> Checkpoint:
        return None  # type: ignore[return-value]  # the value is never looked at


async def _costs(rounds: int) -> dict[str, float]:
    registry = new_registry()
    server, bridge = ServerMetrics(registry), BridgeMetrics(registry)

    async def behavior(request: Any, ctx: Any) -> None:
        return None

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope[ROUTE_KEY] = "/v1/checkpoints/{checkpoint_id}"
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message: Any) -> None:
        return None

    async def call(request: Any, **kwargs: Any) -> None:
        return None

    scope = {"type": "http", "method": "GET", "path": "/v1/checkpoints/x", "headers": []}
    # The call observer (span ids, x-request-id, access line when on) with and without its
    # series: the difference is what the metrics add to a gRPC call.
    unmetered, metered = (
        observed(METHOD, behavior),
        observed(METHOD, behavior, server.unary_series(METHOD)),
    )
    store = MeteredStore(_Store(), server, "sqlite")  # type: ignore[arg-type]
    bare_store = _Store()
    observed_app, metered_app = HttpObserver(app), HttpObserver(app, bridge.http_meter())
    metered_call = bridge.client_call(METHOD, call)
    pairs: dict[str, tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]]]] = {
        "server_call": (  # a context per call: each sends its x-request-id once
            lambda: unmetered(None, LocalContext((), None)),
            lambda: metered(None, LocalContext((), None)),
        ),
        "store_operation": (lambda: bare_store.get(None), lambda: store.get(None)),  # type: ignore[arg-type]
        "http_request": (
            lambda: observed_app(dict(scope), None, send),  # type: ignore[arg-type]
            lambda: metered_app(dict(scope), None, send),  # type: ignore[arg-type]
        ),
        "upstream_call": (lambda: call(None), lambda: metered_call(None)),
    }
    return {
        name: max(0.0, await _per_call(wrapped, rounds) - await _per_call(bare, rounds)) * 1e6
        for name, (bare, wrapped) in pairs.items()
    }


def instrumentation_cost(rounds: int = 20_000) -> dict[str, float]:
    """Microseconds each metered step adds per request, and the sums per kind of request."""
    costs = asyncio.run(_costs(rounds))
    grpc = costs["server_call"] + costs["store_operation"]
    bridge = costs["http_request"] + costs["upstream_call"]
    return {
        **{name: round(us, 2) for name, us in costs.items()},
        "grpc_request": round(grpc, 2),
        "rest_bridge_request": round(grpc + bridge, 2),
        "rest_inprocess_request": round(grpc + bridge, 2),
    }
