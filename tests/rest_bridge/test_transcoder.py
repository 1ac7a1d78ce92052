"""The transcoder (rest_bridge.transcoder), the bridge's hot path, in-process and in seconds.

Requests go through the real app (rest_bridge.app.create_app) via httpx.ASGITransport, or
straight into its ASGI callable where httpx cannot express the client (a body that never ends),
to a real grpc.aio server on port 0 serving a stand-in CheckpointService (tests.rest_bridge.
upstream). The subprocess suite (tests/e2e) checks the same contract over real sockets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from checkpoint.v1 import checkpoint_pb2 as pb
from checkpoint.v1 import checkpoint_service_pb2 as svc

from tests.rest_bridge.upstream import (
    CHECKPOINT_JSON,
    Bridge,
    Upstream,
    answer,
    checkpoint,
    dead_address,
    fail,
    fail_plain,
    open_bridge,
    rich_status,
)

pytestmark = pytest.mark.anyio

GENERATED_ID = re.compile(r"[0-9a-f]{32}")
Message = dict[str, Any]


def _error(code: str, message: str, details: list[dict[str, str]] | None = None) -> object:
    error: dict[str, object] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


async def _drive(
    app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]], receive: Any
) -> tuple[int, dict[str, str], object]:
    """Call the ASGI app directly with receive; the status, headers and JSON body it sends."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "server": ("bridge", 80),
        "client": ("127.0.0.1", 40000),
    }
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    start, body = sent
    headers_out = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers_out, json.loads(body["body"])


def _receive_from(messages: list[Message], then: Callable[[], Awaitable[Message]]) -> Any:
    """A receive() that returns messages in order, then awaits then()."""
    queue = list(messages)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        return await then()

    return receive


async def _never() -> Message:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def _must_not_read() -> Message:
    raise AssertionError("the body was read although Content-Length is over the limit")


# -- routing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/v1/nope", id="unknown"),
        pytest.param("GET", "/v1/checkpoints/", id="trailing-slash-collection"),
        pytest.param("GET", "/v1/checkpoints/x/", id="trailing-slash-resource"),
        pytest.param("DELETE", "/v1/checkpoints/a/b", id="extra-segment"),
        pytest.param("GET", "/healthz/", id="trailing-slash-probe"),
        pytest.param("GET", "/", id="root"),
    ],
)
async def test_unknown_path_is_404(
    asgi_bridge: Bridge, upstream: Upstream, method: str, path: str
) -> None:
    """A path no route matches is 404 not_found naming it, never a redirect, and calls nothing."""
    response = await asgi_bridge.client.request(method, path)
    assert response.status_code == 404
    assert response.json() == _error("not_found", f"no route for {method} {path}")
    assert "location" not in response.headers
    assert response.headers["content-type"] == "application/json"
    assert upstream.standin.calls == []


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        pytest.param("PUT", "/v1/checkpoints/x", "DELETE, GET, HEAD, PATCH", id="put-resource"),
        pytest.param("POST", "/v1/checkpoints/x", "DELETE, GET, HEAD, PATCH", id="post-resource"),
        pytest.param("DELETE", "/v1/checkpoints", "GET, HEAD, POST", id="delete-collection"),
        pytest.param("OPTIONS", "/v1/checkpoints", "GET, HEAD, POST", id="options-collection"),
    ],
)
async def test_wrong_method_is_405_with_allow(
    asgi_bridge: Bridge, upstream: Upstream, method: str, path: str, allow: str
) -> None:
    """A known path with another method is 405 unimplemented, Allow listing all its methods."""
    response = await asgi_bridge.client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json() == _error(
        "unimplemented", f"method {method} is not allowed on {path}; allowed: {allow}"
    )
    assert upstream.standin.calls == []


async def test_head_is_the_get_without_body(asgi_bridge: Bridge) -> None:
    """HEAD on a GET route answers the GET's status and headers, Content-Length included."""
    got = await asgi_bridge.client.get("/v1/checkpoints", headers={"X-Request-Id": "h"})
    head = await asgi_bridge.client.head("/v1/checkpoints", headers={"X-Request-Id": "h"})
    assert head.status_code == got.status_code
    assert head.headers == got.headers
    assert int(head.headers["content-length"]) == len(got.content) > 0
    assert head.content == b""


# -- the success envelope -------------------------------------------------------------------


async def test_get_is_data_envelope_of_response_body(
    asgi_bridge: Bridge, upstream: Upstream
) -> None:
    """GET answers 200 {"data": response_body} in compact JSON, proto names, lowercase state."""
    response = await asgi_bridge.client.get("/v1/checkpoints/ubuntu-24.04-base")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.content))
    expected = {"data": CHECKPOINT_JSON}
    assert response.content == json.dumps(expected, separators=(",", ":")).encode()
    [call] = upstream.standin.calls
    assert call.method == "GetCheckpoint"
    assert call.request == svc.GetCheckpointRequest(checkpoint_id="ubuntu-24.04-base")


async def test_list_without_response_body_is_whole_response(
    asgi_bridge: Bridge, upstream: Upstream
) -> None:
    """A rule without response_body puts the whole response, defaults included, under data."""
    upstream.standin.behaviours["ListCheckpoints"] = answer(
        svc.ListCheckpointsResponse(checkpoints=[checkpoint()], next_page_token="p2")
    )
    response = await asgi_bridge.client.get(
        "/v1/checkpoints", params={"page_size": "5", "state": "ready", "page_token": "p1"}
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"checkpoints": [CHECKPOINT_JSON], "next_page_token": "p2"}}
    [call] = upstream.standin.calls
    assert call.request == svc.ListCheckpointsRequest(
        page_size=5, page_token="p1", state=pb.CheckpointState.CHECKPOINT_STATE_READY
    )


async def test_post_body_becomes_request_field(asgi_bridge: Bridge, upstream: Upstream) -> None:
    """A POST body fills the rule's body field, and the reply's body field is the data."""
    body = {"display_name": "box", "resources": {"limits": {"memory_mib": 512}}}
    response = await asgi_bridge.client.post("/v1/checkpoints", json=body)
    assert response.status_code == 200
    assert response.json() == {"data": CHECKPOINT_JSON}
    [call] = upstream.standin.calls
    assert call.request == svc.CreateCheckpointRequest(
        checkpoint=pb.Checkpoint(
            display_name="box", resources=pb.Resources(limits=pb.ResourceLimits(memory_mib=512))
        )
    )


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        pytest.param("my%20box", "my box", id="space"),
        pytest.param("a%2Fb", "a/b", id="slash-left-to-the-server"),
        pytest.param("%C3%A9t%C3%A9", "\u00e9t\u00e9", id="utf-8"),
    ],
)
async def test_path_variable_is_percent_decoded_once(
    asgi_bridge: Bridge, upstream: Upstream, raw: str, decoded: str
) -> None:
    """A path segment is percent-decoded once into the request field."""
    response = await asgi_bridge.client.get(f"/v1/checkpoints/{raw}")
    assert response.status_code == 200
    assert upstream.standin.calls[0].request == svc.GetCheckpointRequest(checkpoint_id=decoded)


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        pytest.param(
            "GET",
            "/v1/checkpoints/%FF",
            None,
            _error(
                "invalid_argument",
                "path variable checkpoint_id is not valid percent-encoded UTF-8",
                [
                    {
                        "field": "checkpoint_id",
                        "description": "path variable checkpoint_id is not valid "
                        "percent-encoded UTF-8",
                    }
                ],
            ),
            id="path-not-utf8",
        ),
        pytest.param(
            "GET",
            "/v1/checkpoints?bogus=1",
            None,
            _error(
                "invalid_argument",
                "unknown query parameter 'bogus'",
                [{"field": "bogus", "description": "unknown query parameter 'bogus'"}],
            ),
            id="unknown-query-parameter",
        ),
        pytest.param(
            "POST",
            "/v1/checkpoints",
            b'{"display_name": 5}',
            _error(
                "invalid_argument",
                "checkpoint.display_name: must be a string",
                [{"field": "checkpoint.display_name", "description": "must be a string"}],
            ),
            id="wrong-json-type",
        ),
    ],
)
async def test_bad_request_is_422_with_details(  # noqa: PLR0917 (one parameter per table column)
    asgi_bridge: Bridge,
    upstream: Upstream,
    method: str,
    path: str,
    body: bytes | None,
    expected: object,
) -> None:
    """A request the bridge cannot map is 422 invalid_argument naming the field, sent nowhere."""
    response = await asgi_bridge.client.request(method, path, content=body)
    assert response.status_code == 422
    assert response.json() == expected
    assert upstream.standin.calls == []


async def test_malformed_json_is_422(asgi_bridge: Bridge, upstream: Upstream) -> None:
    """A body that is not JSON is 422 invalid_argument without details, sent nowhere."""
    response = await asgi_bridge.client.post("/v1/checkpoints", content=b"{nope")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_argument"
    assert error["message"].startswith("request body is not valid JSON: ")
    assert "details" not in error
    assert upstream.standin.calls == []


# -- body limits ----------------------------------------------------------------------------

LIMIT = 64
TOO_LARGE = _error("invalid_argument", f"request body is larger than the limit of {LIMIT} bytes")


async def test_body_at_limit_is_accepted(upstream: Upstream) -> None:
    """A body of exactly max_body_bytes is read and forwarded."""
    async with open_bridge(upstream.address, max_body_bytes=LIMIT) as bridge:
        response = await bridge.client.post(
            "/v1/checkpoints", content=b'{"display_name":"box"}'.ljust(LIMIT)
        )
    assert response.status_code == 200
    assert upstream.standin.calls[0].request == svc.CreateCheckpointRequest(
        checkpoint=pb.Checkpoint(display_name="box")
    )


async def test_body_over_limit_by_content_length_is_413(upstream: Upstream) -> None:
    """A body one byte over max_body_bytes (Content-Length) is 413 invalid_argument."""
    async with open_bridge(upstream.address, max_body_bytes=LIMIT) as bridge:
        response = await bridge.client.post(
            "/v1/checkpoints", content=b'{"display_name":"box"}'.ljust(LIMIT + 1)
        )
    assert response.status_code == 413
    assert response.json() == TOO_LARGE
    assert upstream.standin.calls == []


async def test_declared_length_over_limit_is_413_unread(upstream: Upstream) -> None:
    """A Content-Length over the limit is refused with 413 before any of the body is read."""
    async with open_bridge(upstream.address, max_body_bytes=LIMIT) as bridge:
        status, headers, body = await _drive(
            bridge.app,
            "POST",
            "/v1/checkpoints",
            [(b"content-length", b"1000000"), (b"x-request-id", b"big-1")],
            _must_not_read,
        )
    assert (status, body) == (413, TOO_LARGE)
    assert headers["x-request-id"] == "big-1"


async def test_streamed_body_over_limit_is_413(upstream: Upstream) -> None:
    """A chunked body without Content-Length is cut off with 413 once it passes the limit."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 16

    async with open_bridge(upstream.address, max_body_bytes=LIMIT) as bridge:
        response = await bridge.client.post("/v1/checkpoints", content=chunks())
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json() == TOO_LARGE
    assert upstream.standin.calls == []


async def test_stalled_body_is_408_and_frees_its_slot(upstream: Upstream) -> None:
    """A body that never finishes is 408 after the timeout, and its in-flight slot is freed."""
    async with open_bridge(upstream.address, timeout=0.2, max_in_flight=1) as bridge:
        started = time.monotonic()
        status, headers, body = await _drive(
            bridge.app,
            "POST",
            "/v1/checkpoints",
            [(b"content-type", b"application/json"), (b"x-request-id", b"stall-1")],
            _receive_from([{"type": "http.request", "body": b"{", "more_body": True}], _never),
        )
        elapsed = time.monotonic() - started
        assert status == 408
        assert body == _error("deadline_exceeded", "the request body did not arrive within 0.2 s")
        assert headers["x-request-id"] == "stall-1"
        assert 0.15 < elapsed < 2
        assert upstream.standin.calls == []
        after = await bridge.client.get("/v1/checkpoints/x")
        assert after.status_code == 200


async def test_client_gone_during_body_is_499(upstream: Upstream) -> None:
    """A client that disconnects while sending its body gets 499 cancelled; nothing is called."""
    async with open_bridge(upstream.address) as bridge:
        status, _, body = await _drive(
            bridge.app,
            "POST",
            "/v1/checkpoints",
            [],
            _receive_from(
                [
                    {"type": "http.request", "body": b"{", "more_body": True},
                    {"type": "http.disconnect"},
                ],
                _never,
            ),
        )
    assert (status, body) == (499, _error("cancelled", "the client went away"))
    assert upstream.standin.calls == []


# -- shedding -------------------------------------------------------------------------------


async def test_over_max_in_flight_is_shed_with_503(upstream: Upstream) -> None:
    """With max_in_flight requests held upstream, one more is 503 unavailable + Retry-After."""
    standin = upstream.standin
    standin.behaviours["GetCheckpoint"] = standin.hold(
        svc.GetCheckpointResponse(checkpoint=checkpoint())
    )
    async with open_bridge(upstream.address, max_in_flight=1) as bridge:
        held = asyncio.create_task(bridge.client.get("/v1/checkpoints/x"))
        await asyncio.wait_for(standin.entered.wait(), 5)
        shed = await bridge.client.get("/v1/checkpoints/y", headers={"X-Request-Id": "shed-1"})
        unrouted = await bridge.client.get("/v1/nope")
        standin.release.set()
        first = await held
        after = await bridge.client.get("/v1/checkpoints/z")
    assert shed.status_code == 503
    assert shed.headers["retry-after"] == "1"
    assert shed.headers["x-request-id"] == "shed-1"
    assert shed.json() == _error("unavailable", "the bridge is overloaded; retry later")
    assert unrouted.status_code == 503
    assert (first.status_code, after.status_code) == (200, 200)
    assert [c.request.checkpoint_id for c in standin.calls] == ["x", "z"]  # type: ignore[attr-defined]


# -- deadlines ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        pytest.param(None, 4.0, 5.0, id="none-is-configured"),
        pytest.param("1500m", 1.0, 1.5, id="shorter-wins"),
        pytest.param("1H", 4.0, 5.0, id="longer-is-capped"),
        pytest.param(" 2S ", 1.5, 2.0, id="whitespace"),
    ],
)
async def test_grpc_timeout_sets_upstream_deadline(
    upstream: Upstream, header: str | None, low: float, high: float
) -> None:
    """The upstream's deadline is Grpc-Timeout capped by the configured timeout (5 s)."""
    # grpcio rounds the deadline it sends up a little, hence the slack above `high`.
    headers = {} if header is None else {"Grpc-Timeout": header}
    async with open_bridge(upstream.address, timeout=5.0) as bridge:
        response = await bridge.client.get("/v1/checkpoints/x", headers=headers)
    assert response.status_code == 200
    remaining = upstream.standin.calls[0].time_remaining
    assert remaining is not None
    assert low < remaining <= high + 0.1


DEADLINE = _error("deadline_exceeded", "the checkpoint service did not answer in time")


@pytest.mark.parametrize(
    ("configured", "header"),
    [
        pytest.param(5.0, "100m", id="grpc-timeout-shortens"),
        pytest.param(0.1, "1H", id="configured-caps-grpc-timeout"),
        pytest.param(0.1, None, id="configured"),
    ],
)
async def test_slow_upstream_is_504_at_deadline(
    upstream: Upstream, configured: float, header: str | None
) -> None:
    """An upstream that does not answer in time is 504 deadline_exceeded at the deadline."""
    standin = upstream.standin
    standin.behaviours["GetCheckpoint"] = standin.hold(svc.GetCheckpointResponse())
    headers = {} if header is None else {"Grpc-Timeout": header}
    async with open_bridge(upstream.address, timeout=configured) as bridge:
        started = time.monotonic()
        response = await bridge.client.get("/v1/checkpoints/x", headers=headers)
        elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json() == DEADLINE
    assert "retry-after" not in response.headers
    assert 0.05 < elapsed < 1.5


async def test_zero_grpc_timeout_is_504_without_a_call(
    asgi_bridge: Bridge, upstream: Upstream
) -> None:
    """A Grpc-Timeout of zero has already expired: 504 without calling the upstream."""
    response = await asgi_bridge.client.get("/v1/checkpoints/x", headers={"Grpc-Timeout": "0m"})
    assert response.status_code == 504
    assert response.json() == DEADLINE
    assert upstream.standin.calls == []


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("soon", id="word"),
        pytest.param("500", id="no-unit"),
        pytest.param("123456789S", id="nine-digits"),
        pytest.param("-1S", id="negative"),
        pytest.param("1.5S", id="fraction"),
    ],
)
async def test_bad_grpc_timeout_is_422(
    asgi_bridge: Bridge, upstream: Upstream, header: str
) -> None:
    """A Grpc-Timeout that is not gRPC timeout syntax is 422 naming the header, sent nowhere."""
    message = "Grpc-Timeout header must be 1-8 digits and a unit (H, M, S, m, u, n), e.g. 500m"
    response = await asgi_bridge.client.get("/v1/checkpoints/x", headers={"Grpc-Timeout": header})
    assert response.status_code == 422
    assert response.json() == _error(
        "invalid_argument", message, [{"field": "Grpc-Timeout", "description": message}]
    )
    assert upstream.standin.calls == []


# -- upstream failures ----------------------------------------------------------------------


async def test_upstream_down_is_503() -> None:
    """An upstream that refuses connections is 503 unavailable with the bridge's own message."""
    with dead_address() as address:
        async with open_bridge(address) as bridge:
            response = await bridge.client.get("/v1/checkpoints/x")
    assert response.status_code == 503
    assert response.json() == _error(
        "unavailable", "the checkpoint service is unavailable; retry later"
    )


@pytest.mark.parametrize(
    ("status", "http", "retry_after", "expected"),
    [
        pytest.param(
            rich_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "rate limit", retry_delay=2.5),
            429,
            "3",
            _error("resource_exhausted", "rate limit"),
            id="rate-limit-with-retry-info",
        ),
        pytest.param(
            rich_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many calls"),
            503,
            "1",
            _error("unavailable", "the checkpoint service is overloaded; retry later"),
            id="exhausted-without-retry-info",
        ),
        pytest.param(
            rich_status(
                grpc.StatusCode.INVALID_ARGUMENT,
                "invalid checkpoint",
                violations=[("checkpoint_id", "too long"), ("etag", "must not be empty")],
            ),
            422,
            None,
            _error(
                "invalid_argument",
                "invalid checkpoint",
                [
                    {"field": "checkpoint_id", "description": "too long"},
                    {"field": "etag", "description": "must not be empty"},
                ],
            ),
            id="bad-request-details",
        ),
        pytest.param(
            rich_status(grpc.StatusCode.NOT_FOUND, 'checkpoint "x" not found'),
            404,
            None,
            _error("not_found", 'checkpoint "x" not found'),
            id="not-found",
        ),
        pytest.param(
            rich_status(grpc.StatusCode.FAILED_PRECONDITION, "etag mismatch"),
            409,
            None,
            _error("failed_precondition", "etag mismatch"),
            id="failed-precondition",
        ),
        pytest.param(
            rich_status(grpc.StatusCode.PERMISSION_DENIED, "token lacks checkpoints:read"),
            403,
            None,
            _error("permission_denied", "token lacks checkpoints:read"),
            id="permission-denied",
        ),
    ],
)
async def test_upstream_status_maps_to_http(  # noqa: PLR0917 (one parameter per table column)
    asgi_bridge: Bridge,
    upstream: Upstream,
    status: grpc.Status,
    http: int,
    retry_after: str | None,
    expected: object,
) -> None:
    """An upstream status becomes the table's HTTP status and envelope, details included."""
    upstream.standin.behaviours["GetCheckpoint"] = fail(status)
    response = await asgi_bridge.client.get("/v1/checkpoints/x")
    assert response.status_code == http
    assert response.headers.get("retry-after") == retry_after
    assert response.json() == expected


@pytest.mark.parametrize(
    ("authorization", "challenge"),
    [
        pytest.param(None, "Bearer", id="no-token"),
        pytest.param("Bearer wrong", 'Bearer error="invalid_token"', id="rejected-token"),
    ],
)
async def test_unauthenticated_is_401_with_challenge(
    asgi_bridge: Bridge, upstream: Upstream, authorization: str | None, challenge: str
) -> None:
    """UNAUTHENTICATED is 401 with WWW-Authenticate, invalid_token only when a token was sent."""
    upstream.standin.behaviours["GetCheckpoint"] = fail_plain(
        grpc.StatusCode.UNAUTHENTICATED, "missing bearer token"
    )
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await asgi_bridge.client.get("/v1/checkpoints/x", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == challenge
    assert response.json() == _error("unauthenticated", "missing bearer token")


@pytest.mark.parametrize(
    ("code", "http", "expected", "retry_after"),
    [
        pytest.param(
            grpc.StatusCode.CANCELLED,
            503,
            _error(
                "unavailable",
                "the checkpoint service stopped while handling the request; retry it",
            ),
            "1",
            id="cancelled-is-server-stopping",
        ),
        pytest.param(
            grpc.StatusCode.INTERNAL,
            500,
            _error("internal", "internal error"),
            None,
            id="internal-message-hidden",
        ),
        pytest.param(
            grpc.StatusCode.UNAVAILABLE,
            503,
            _error("unavailable", "the checkpoint service is unavailable; retry later"),
            None,
            id="unavailable-message-hidden",
        ),
    ],
)
async def test_plain_upstream_status_gets_local_message(  # noqa: PLR0917 (one parameter per table column)
    asgi_bridge: Bridge,
    upstream: Upstream,
    code: grpc.StatusCode,
    http: int,
    expected: object,
    retry_after: str | None,
) -> None:
    """A status without google.rpc details that grpcio may make up gets the bridge's message."""
    upstream.standin.behaviours["GetCheckpoint"] = fail_plain(code, "10.0.0.7:5432 refused")
    response = await asgi_bridge.client.get("/v1/checkpoints/x")
    assert response.status_code == http
    assert response.json() == expected
    assert response.headers.get("retry-after") == retry_after


async def test_servicer_exception_is_500_unknown(asgi_bridge: Bridge, upstream: Upstream) -> None:
    """An exception in the upstream servicer is 500 unknown, its text not shown to the client."""

    async def boom(request: object, context: object) -> object:
        raise ValueError("secret at /srv/db")

    upstream.standin.behaviours["GetCheckpoint"] = boom
    response = await asgi_bridge.client.get("/v1/checkpoints/x")
    assert response.status_code == 500
    assert response.json() == _error("unknown", "unknown error")


# -- headers in and out ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        pytest.param("req-42.a:b@c/d+e=f", True, id="echoed"),
        pytest.param(None, False, id="generated-when-missing"),
        pytest.param("has space", False, id="replaced-when-malformed"),
        pytest.param("x" * 129, False, id="replaced-when-too-long"),
    ],
)
async def test_request_id_is_echoed_and_forwarded(
    asgi_bridge: Bridge, upstream: Upstream, sent: str | None, kept: bool
) -> None:
    """X-Request-Id is kept when sane, else generated; it is returned and sent as x-request-id."""
    headers = {} if sent is None else {"X-Request-Id": sent}
    response = await asgi_bridge.client.get("/v1/checkpoints/x", headers=headers)
    assert response.status_code == 200
    rid = response.headers["x-request-id"]
    if kept:
        assert rid == sent
    else:
        assert GENERATED_ID.fullmatch(rid)
    assert upstream.standin.calls[0].forwarded()["x-request-id"] == [rid]


async def test_request_id_is_on_errors_too(asgi_bridge: Bridge, upstream: Upstream) -> None:
    """An upstream error answer carries the same X-Request-Id that the upstream was sent."""
    upstream.standin.behaviours["GetCheckpoint"] = fail_plain(grpc.StatusCode.NOT_FOUND, "gone")
    response = await asgi_bridge.client.get("/v1/checkpoints/x", headers={"X-Request-Id": "err-7"})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "err-7"
    assert upstream.standin.calls[0].forwarded()["x-request-id"] == ["err-7"]


@pytest.mark.parametrize(
    ("headers", "forwarded"),
    [
        pytest.param(
            {
                "Authorization": "Bearer ckpt_secret",
                "Cookie": "session=1",
                "X-Forwarded-For": "10.0.0.1",
                "Proxy-Authorization": "Basic eA==",
                "X-Api-Key": "k",
            },
            {"authorization": ["Bearer ckpt_secret"], "x-request-id": ["rid-1"]},
            id="only-authorization",
        ),
        pytest.param({}, {"x-request-id": ["rid-1"]}, id="no-authorization"),
        pytest.param(
            {"Authorization": "Bearer " + "t" * 5000},
            {"authorization": [""], "x-request-id": ["rid-1"]},
            id="over-long-sent-empty",
        ),
    ],
)
async def test_only_allow_listed_headers_are_forwarded(
    asgi_bridge: Bridge,
    upstream: Upstream,
    headers: dict[str, str],
    forwarded: dict[str, list[str]],
) -> None:
    """Authorization reaches the upstream only as authorization; no other header is forwarded."""
    response = await asgi_bridge.client.get(
        "/v1/checkpoints/x", headers={**headers, "X-Request-Id": "rid-1"}
    )
    assert response.status_code == 200
    assert upstream.standin.calls[0].forwarded() == forwarded
    assert "authorization" not in response.headers


async def test_bridge_failure_is_500_internal(
    upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected exception in the bridge (a closed channel) is logged and 500 internal."""
    async with open_bridge(upstream.address) as bridge:
        await bridge.channel.close(None)
        with caplog.at_level(logging.ERROR, logger="rest_bridge.transcoder"):
            response = await bridge.client.get("/v1/checkpoints/x", headers={"X-Request-Id": "c-1"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "c-1"
    assert response.json() == _error("internal", "internal error")
    assert [r.getMessage() for r in caplog.records if r.name == "rest_bridge.transcoder"] == [
        "unexpected error in the bridge (request id c-1)"
    ]
