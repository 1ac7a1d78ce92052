"""rest_bridge.metrics on its own: the labels of each request and each upstream call.

The app under the meter (taken by rest_bridge.http_observer) is a scripted ASGI callable, so
each edge (a crash before any answer, an unknown method, a reserved path, a route template) is
reached directly; tests/e2e/test_metrics.py scrapes the real processes.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry
from starlette.types import Receive, Scope, Send

from rest_bridge.access_log import ROUTE_KEY
from rest_bridge.http_observer import HttpObserver
from rest_bridge.metrics import UNMATCHED, BridgeMetrics

pytestmark = pytest.mark.anyio

DURATION = "http_server_request_duration_seconds_count"


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers 200 on /v1/things/<id> (leaving its template), 204 on /healthz, crashes on /boom."""
    if scope["path"] == "/boom":
        raise RuntimeError("crashed before answering")
    if scope["path"].startswith("/v1/things/"):
        scope[ROUTE_KEY] = "/v1/things/{thing_id}"
    status = 204 if scope["path"] == "/healthz" else 200
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def request(metered: Any, method: str, path: str) -> None:
    scope = {"type": "http", "method": method, "path": path, "headers": []}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        return None

    await metered(scope, receive, send)


def count(registry: CollectorRegistry, method: str, route: str, status: str) -> float:
    labels = {"http_request_method": method, "http_route": route}
    labels["http_response_status_code"] = status
    return registry.get_sample_value(DURATION, labels) or 0.0


async def test_requests_are_labelled_by_template_reserved_path_or_the_fixed_route() -> None:
    """A matched route is its template, a reserved path itself, anything else UNMATCHED; an
    unknown method is _OTHER; a crash before any answer is a 500; nothing stays active."""
    registry = CollectorRegistry()
    metered = HttpObserver(app, BridgeMetrics(registry).http_meter())
    for path in ("/v1/things/1", "/v1/things/2", "/healthz", "/random/path"):
        await request(metered, "GET", path)
    await request(metered, "BREW", "/v1/things/3")
    with pytest.raises(RuntimeError):
        await request(metered, "GET", "/boom")
    assert count(registry, "GET", "/v1/things/{thing_id}", "200") == 2
    assert count(registry, "GET", "/healthz", "204") == 1
    assert count(registry, "GET", UNMATCHED, "200") == 1
    assert count(registry, "_OTHER", "/v1/things/{thing_id}", "200") == 1
    assert count(registry, "GET", UNMATCHED, "500") == 1
    active = registry.get_sample_value(
        "http_server_active_requests", {"http_request_method": "GET"}
    )
    assert active == 0


async def test_other_scopes_pass_through_unmeasured() -> None:
    """A non-HTTP scope (lifespan) reaches the app untouched and records nothing."""
    registry = CollectorRegistry()
    seen: list[str] = []

    async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        return None

    observer = HttpObserver(lifespan_app, BridgeMetrics(registry).http_meter())
    await observer({"type": "lifespan"}, receive, send)
    assert seen == ["lifespan"]
    recorded = [
        sample
        for family in registry.collect()
        if family.name == "http_server_request_duration_seconds"
        for sample in family.samples
    ]
    assert recorded == []


class Failure(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE


async def test_upstream_calls_are_counted_with_their_code() -> None:
    """A reply is OK and an RpcError its code, under go-grpc-prometheus's client names."""
    registry = CollectorRegistry()
    metrics = BridgeMetrics(registry)
    answers: list[Any] = ["reply", Failure()]

    async def call(request: Any, **kwargs: Any) -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    observed = metrics.client_call("/pkg.Service/Get", call)
    assert await observed("req", timeout=1.0) == "reply"
    with pytest.raises(Failure):
        await observed("req", timeout=1.0)
    labels = {"grpc_type": "unary", "grpc_service": "pkg.Service", "grpc_method": "Get"}
    for code in ("OK", "Unavailable"):
        handled = registry.get_sample_value(
            "grpc_client_handled_total", {**labels, "grpc_code": code}
        )
        assert handled == 1, code
    assert registry.get_sample_value("grpc_client_handling_seconds_count", labels) == 2
    assert registry.get_sample_value("grpc_client_started_total", labels) == 2
