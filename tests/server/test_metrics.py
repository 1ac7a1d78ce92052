"""server.metrics and server.metered_store on their own: what each outcome records.

Calls run against an in-process LocalContext (the context the --rest-listen door gives the
guard), so every way a call can end is reached directly; tests/e2e/test_metrics.py counts real
calls over the network.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import httpx
import pytest
from prometheus_client import CollectorRegistry

from checkpoint_prometheus import code_name, new_registry, serve_metrics, split_method
from server.call_observer import observed
from server.domain import ById, Checkpoint, Lookup, State
from server.errors import Aborted, NotFound, RateLimited, Unavailable
from server.local_context import LocalContext
from server.metered_store import MeteredStore, backend_name
from server.metrics import ServerMetrics
from server.store import Change

pytestmark = pytest.mark.anyio

GET = "/checkpoint.v1.CheckpointService/GetCheckpoint"
LABELS = {
    "grpc_type": "unary",
    "grpc_service": "checkpoint.v1.CheckpointService",
    "grpc_method": "GetCheckpoint",
}


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def ok(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> str:
    return "reply"


async def refused(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> str:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no token")
    raise AssertionError("abort returned")


async def broken(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> str:
    raise RuntimeError("a bug the guard did not catch")


async def slow(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> str:
    await asyncio.sleep(10)
    return "late"


async def test_each_outcome_is_counted_under_its_go_code_name() -> None:
    """A reply is OK, an abort its code, an escaped exception Unknown, a cancellation past the
    deadline DeadlineExceeded and one before it Canceled; each is started, handled and timed."""
    registry = CollectorRegistry()
    series = ServerMetrics(registry).unary_series(GET)
    assert await observed(GET, ok, series)(None, LocalContext((), None)) == "reply"
    with pytest.raises(grpc.aio.AbortError):
        await observed(GET, refused, series)(None, LocalContext((), None))
    with pytest.raises(RuntimeError):
        await observed(GET, broken, series)(None, LocalContext((), None))
    for deadline in (time.monotonic() - 1, None):
        task = asyncio.ensure_future(observed(GET, slow, series)(None, LocalContext((), deadline)))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    for code in ("OK", "Unauthenticated", "Unknown", "DeadlineExceeded", "Canceled"):
        assert value(registry, "grpc_server_handled_total", grpc_code=code, **LABELS) == 1, code
    assert value(registry, "grpc_server_started_total", **LABELS) == 5
    assert value(registry, "grpc_server_handling_seconds_count", **LABELS) == 5


class Limiter:
    def __init__(self) -> None:
        self.closed = False

    async def acquire(self, key: str) -> None:
        if key == "greedy":
            raise RateLimited("slow down", retry_after=1.0)

    async def aclose(self) -> None:
        self.closed = True


async def test_refusals_of_the_rate_limit_are_counted_by_token_name() -> None:
    """Only a refused acquire counts, labelled with the token's name; aclose is passed on."""
    registry = CollectorRegistry()
    inner = Limiter()
    limiter = ServerMetrics(registry).count_refusals(inner)
    await limiter.acquire("polite")
    with pytest.raises(RateLimited):
        await limiter.acquire("greedy")
    await limiter.aclose()
    assert value(registry, "checkpoint_rate_limited_total", token_name="greedy") == 1
    assert value(registry, "checkpoint_rate_limited_total", token_name="polite") == 0
    assert inner.closed


class Store:
    """Answers what each test needs: domain answers, a store failure and a stray bug."""

    async def get(self, lookup: Lookup) -> Checkpoint:
        raise NotFound("no such checkpoint")

    async def list(
        self, *, state: State | None, after: int, limit: int
    ) -> list[tuple[int, Checkpoint]]:
        raise Unavailable("database unreachable")

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def create(self, checkpoint: Checkpoint, completes: Any = None) -> Checkpoint:
        return checkpoint

    async def claim_request(self, key: Any, now: Any, *, ttl: Any, lease: Any) -> bytes | None:
        return None

    async def release_request(self, key: Any) -> None:
        return None

    async def purge_requests(self, now: Any) -> int:
        return 0

    async def snapshot(self, state: Any, checkpoint_id: Any) -> Any:
        raise NotImplementedError

    async def changes_after(self, after: int, limit: int) -> Any:
        raise NotImplementedError

    async def wait_for_change(self) -> None:
        return None

    async def update(self, lookup: Lookup, change: Change) -> Checkpoint:
        raise Aborted("etag mismatch")

    async def delete(self, lookup: Lookup, expected_etag: str) -> Checkpoint:
        raise NotFound("no such checkpoint")

    async def import_many(self, checkpoints: Any) -> int:
        raise RuntimeError("driver exploded")

    async def secret(self, name: str) -> bytes:
        return b"key"


async def test_store_operations_are_timed_and_only_failures_are_errors() -> None:
    """Every operation is timed; NotFound is an answer, Unavailable and a stray exception are
    store errors."""
    registry = CollectorRegistry()
    store = MeteredStore(Store(), ServerMetrics(registry), "sqlite")
    with pytest.raises(NotFound):
        await store.get(ById("x"))
    with pytest.raises(Unavailable):
        await store.list(state=None, after=0, limit=1)
    with pytest.raises(RuntimeError):
        await store.import_many([])
    await store.ping()
    assert await store.secret("k") == b"key"
    sentinel: Any = object()
    assert await store.create(sentinel) is sentinel
    with pytest.raises(Aborted):
        await store.update(ById("x"), lambda current: current)
    with pytest.raises(NotFound):
        await store.delete(ById("x"), "v1")
    await store.close()
    for operation in ("get", "list", "import", "ping", "secret", "create", "update", "delete"):
        labels = {"operation": operation, "backend": "sqlite"}
        assert value(registry, "checkpoint_store_operation_seconds_count", **labels) == 1
    errors = "checkpoint_store_errors_total"
    for answered in ("get", "update", "delete"):
        assert value(registry, errors, operation=answered, backend="sqlite") == 0
    assert value(registry, errors, operation="list", backend="sqlite") == 1
    assert value(registry, errors, operation="import", backend="sqlite") == 1


async def test_a_get_the_store_could_not_answer_is_a_store_error() -> None:
    """A get that fails for want of the store is timed and counted as a store error."""

    class Down(Store):
        async def get(self, lookup: Lookup) -> Checkpoint:
            raise Unavailable("the checkpoint store is unavailable")

    registry = CollectorRegistry()
    store = MeteredStore(Down(), ServerMetrics(registry), "sqlite")
    with pytest.raises(Unavailable):
        await store.get(ById("x"))
    labels = {"operation": "get", "backend": "sqlite"}
    assert value(registry, "checkpoint_store_operation_seconds_count", **labels) == 1
    assert value(registry, "checkpoint_store_errors_total", **labels) == 1


def test_backend_label_names_the_engine() -> None:
    """Both spellings of a PostgreSQL URL are one backend label."""
    assert backend_name("sqlite:///x.db") == "sqlite"
    assert backend_name("postgres://u@h/db") == backend_name("postgresql://u@h/db") == "postgresql"


def test_go_names_of_codes_and_methods() -> None:
    """Codes use Go's spelling (one l in Canceled), and a full method splits into its parts."""
    assert code_name(None) == code_name(grpc.StatusCode.OK) == "OK"
    assert code_name(grpc.StatusCode.CANCELLED) == "Canceled"
    assert code_name(grpc.StatusCode.RESOURCE_EXHAUSTED) == "ResourceExhausted"
    assert split_method(GET) == ("checkpoint.v1.CheckpointService", "GetCheckpoint")


def test_endpoint_serves_the_registry_until_closed() -> None:
    """serve_metrics binds a free port, serves the process collectors, and close frees it."""
    endpoint = serve_metrics("127.0.0.1:0", new_registry(), "--metrics-listen")
    try:
        text = httpx.get(endpoint.url, timeout=5.0).text
        assert "process_cpu_seconds_total" in text
        assert "_created" not in text
    finally:
        endpoint.close()
    with pytest.raises(httpx.TransportError):
        httpx.get(endpoint.url, timeout=1.0)
