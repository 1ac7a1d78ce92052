"""The assembled bridge (rest_bridge.app): create_app, BridgeApp's split, the probes and OpenAPI.

Through httpx.ASGITransport, or the ASGI callable itself for what httpx does not send
(lifespan, websocket), against a real grpc.aio server on port 0 (tests.rest_bridge.upstream).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.rest_bridge.upstream import Bridge, Upstream, dead_address, open_bridge

pytestmark = pytest.mark.anyio

SNAPSHOT = Path(__file__).parent / "openapi.snapshot.json"
GENERATED_ID = re.compile(r"[0-9a-f]{32}")
Message = dict[str, Any]


async def _exchange(app: Any, scope: dict[str, Any], incoming: list[Message]) -> list[Message]:
    """Run app on scope with incoming as what receive() returns; the messages it sent."""
    queue = list(incoming)
    sent: list[Message] = []

    async def receive() -> Message:
        return queue.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


# -- /healthz -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "echoed"),
    [
        pytest.param({"X-Request-Id": "probe-1"}, True, id="request-id-echoed"),
        pytest.param({}, False, id="request-id-generated"),
    ],
)
async def test_healthz_is_ok(
    asgi_bridge: Bridge, upstream: Upstream, headers: dict[str, str], echoed: bool
) -> None:
    """GET /healthz is 200 {"data": {"status": "ok"}} with X-Request-Id, asking no upstream."""
    response = await asgi_bridge.client.get("/healthz", headers=headers)
    assert response.status_code == 200
    assert response.content == b'{"data":{"status":"ok"}}'
    assert response.headers["content-type"] == "application/json"
    rid = response.headers["x-request-id"]
    if echoed:
        assert rid == "probe-1"
    else:
        assert GENERATED_ID.fullmatch(rid)
    assert upstream.standin.calls == []


async def test_healthz_answers_with_upstream_down() -> None:
    """/healthz says only that the bridge is up, so it is 200 even when the upstream is down."""
    with dead_address() as address:
        async with open_bridge(address) as bridge:
            response = await bridge.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"data": {"status": "ok"}}


async def test_head_healthz_is_200_without_body(asgi_bridge: Bridge) -> None:
    """HEAD /healthz is 200 with the GET's headers and no body."""
    response = await asgi_bridge.client.head("/healthz")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(len(b'{"data":{"status":"ok"}}'))


async def test_probe_ignores_query_string(asgi_bridge: Bridge) -> None:
    """A query string does not move a reserved path to the transcoder (no 422 for it)."""
    response = await asgi_bridge.client.get("/healthz", params={"verbose": "1"})
    assert response.status_code == 200
    assert response.json() == {"data": {"status": "ok"}}


# -- /readyz --------------------------------------------------------------------------------


async def test_readyz_serving_is_200(asgi_bridge: Bridge, upstream: Upstream) -> None:
    """/readyz is 200 {"data": {"status": "serving"}} while the upstream's health is SERVING."""
    response = await asgi_bridge.client.get("/readyz", headers={"X-Request-Id": "ready-1"})
    assert response.status_code == 200
    assert response.content == b'{"data":{"status":"serving"}}'
    assert response.headers["x-request-id"] == "ready-1"
    assert upstream.standin.calls == []


async def test_readyz_follows_health_status(asgi_bridge: Bridge, upstream: Upstream) -> None:
    """/readyz is 503 unavailable with Retry-After while NOT_SERVING, and 200 once SERVING."""
    await upstream.set_serving(False)
    down = await asgi_bridge.client.get("/readyz", headers={"X-Request-Id": "ready-2"})
    await upstream.set_serving(True)
    up = await asgi_bridge.client.get("/readyz")
    assert down.status_code == 503
    assert down.headers["retry-after"] == "1"
    assert down.headers["x-request-id"] == "ready-2"
    assert down.json() == {
        "error": {"code": "unavailable", "message": "the checkpoint service is not serving"}
    }
    assert up.status_code == 200


async def test_readyz_upstream_down_is_503() -> None:
    """/readyz is 503 unavailable when the upstream refuses connections."""
    with dead_address() as address:
        async with open_bridge(address) as bridge:
            response = await bridge.client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "error": {
            "code": "unavailable",
            "message": "the checkpoint service is unavailable; retry later",
        }
    }


# -- /openapi.json --------------------------------------------------------------------------


async def test_openapi_json_is_the_generated_document(asgi_bridge: Bridge) -> None:
    """/openapi.json serves the document pinned by the OpenAPI snapshot, as application/json."""
    response = await asgi_bridge.client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document == json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert document["openapi"].startswith("3.1")
    methods = {path: sorted(ops) for path, ops in document["paths"].items()}
    assert methods == {
        "/v1/checkpoints": ["get", "head", "post"],
        "/v1/checkpoints/{checkpoint_id}": ["delete", "get", "head", "patch"],
        "/v1/checkpoints:watch": ["get", "head"],
        "/healthz": ["get", "head"],
        "/readyz": ["get", "head"],
    }


# -- BridgeApp: what goes where ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/readyz/", id="readyz-slash"),
        pytest.param("/openapi.json/", id="openapi-slash"),
        pytest.param("/openapi", id="openapi-no-suffix"),
        pytest.param("/docs/", id="docs-slash"),
        pytest.param("/docs/index.html", id="docs-other-file"),
        pytest.param("/redoc", id="no-redoc"),
    ],
)
async def test_only_exact_reserved_paths_reach_the_framework(
    asgi_bridge: Bridge, path: str
) -> None:
    """A path that is not exactly a reserved one is the transcoder's 404, not the framework's."""
    response = await asgi_bridge.client.get(path)
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": f"no route for GET {path}"}
    }


async def test_lifespan_is_served(asgi_bridge: Bridge) -> None:
    """Lifespan events (which httpx never sends) reach the framework and complete."""
    sent = await _exchange(
        asgi_bridge.app,
        {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
        [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}],
    )
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_websocket_is_closed(asgi_bridge: Bridge, upstream: Upstream) -> None:
    """A websocket, even on a transcoded path, goes to the framework, which closes it."""
    sent = await _exchange(
        asgi_bridge.app,
        {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "ws",
            "path": "/v1/checkpoints",
            "raw_path": b"/v1/checkpoints",
            "root_path": "",
            "query_string": b"",
            "headers": [],
            "subprotocols": [],
        },
        [{"type": "websocket.connect"}],
    )
    assert [m["type"] for m in sent] == ["websocket.close"]
    assert upstream.standin.calls == []
