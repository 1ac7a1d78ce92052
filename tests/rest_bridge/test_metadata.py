"""Unit tests of rest_bridge.metadata: Grpc-Timeout, request ids, the forwarded-header allow-list.

The last tests drive the whole bridge app against a fake channel that records each call, to see
which headers really become gRPC metadata.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import grpc
import httpx
import pytest

from rest_bridge.app import create_app
from rest_bridge.codec import DecodeError
from rest_bridge.config import BridgeConfig
from rest_bridge.descriptor_set import default_descriptor_set, load_schema
from rest_bridge.metadata import FORWARDED, deadline, outbound, request_id

CAP = 10.0


# -- Grpc-Timeout -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        pytest.param(None, CAP, id="absent-is-cap"),
        pytest.param("500m", 0.5, id="milliseconds"),
        pytest.param("2S", 2.0, id="seconds"),
        pytest.param("1500u", 0.0015, id="microseconds"),
        pytest.param("25000000n", 0.025, id="nanoseconds"),
        pytest.param("0m", 0.0, id="zero"),
        pytest.param(" 3S ", 3.0, id="surrounding-space"),
        pytest.param("1M", CAP, id="minute-capped"),
        pytest.param("1H", CAP, id="hour-capped"),
        pytest.param("99999999S", CAP, id="eight-digits-capped"),
        pytest.param("10S", CAP, id="equal-to-cap"),
    ],
)
def test_deadline(header: str | None, seconds: float) -> None:
    """Grpc-Timeout (digits and a unit) sets the deadline, never above the configured cap."""
    assert deadline(header, CAP) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("", id="empty"),
        pytest.param("500", id="no-unit"),
        pytest.param("500ms", id="two-letter-unit"),
        pytest.param("5s", id="lowercase-s"),
        pytest.param("123456789S", id="nine-digits"),
        pytest.param("-1S", id="negative"),
        pytest.param("1.5S", id="fraction"),
        pytest.param("S", id="no-digits"),
    ],
)
def test_deadline_malformed(header: str) -> None:
    """A Grpc-Timeout that is not gRPC timeout syntax is refused, naming the header."""
    with pytest.raises(DecodeError) as caught:
        deadline(header, CAP)
    assert caught.value.field == "Grpc-Timeout"
    assert "Grpc-Timeout header must be" in str(caught.value)


# -- request ids ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("abc-123", id="simple"),
        pytest.param("0b7e4c1a-3f2d-4e5a-9b8c-7d6e5f4a3b2c", id="uuid"),
        pytest.param("trace:span/1+x=y@z.w_v", id="punctuation"),
        pytest.param("x" * 128, id="128-chars"),
    ],
)
def test_request_id_accepted(header: str) -> None:
    """A sane caller-given X-Request-Id is kept as is."""
    assert request_id(header) == header


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(None, id="absent"),
        pytest.param("", id="empty"),
        pytest.param("x" * 129, id="too-long"),
        pytest.param("has space", id="space"),
        pytest.param("line\nbreak", id="newline"),
        pytest.param("caf\u00e9", id="non-ascii"),
        pytest.param("<script>", id="markup"),
    ],
)
def test_request_id_regenerated(header: str | None) -> None:
    """A missing or unsafe X-Request-Id is replaced by a fresh 32-hex-digit id."""
    rid = request_id(header)
    assert rid != header
    assert re.fullmatch(r"[0-9a-f]{32}", rid)


def test_generated_request_ids_differ() -> None:
    """Each generated request id is new."""
    assert request_id(None) != request_id(None)


# -- outbound metadata ------------------------------------------------------------------------


def test_forwarded_allow_list() -> None:
    """Only Authorization, X-Request-Id and the W3C trace context may become gRPC metadata."""
    assert FORWARDED == {
        "authorization": "authorization",
        "x-request-id": "x-request-id",
        "traceparent": "traceparent",
        "tracestate": "tracestate",
    }


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        pytest.param([], (("x-request-id", "r1"),), id="no-token"),
        pytest.param(
            ["Bearer t"], (("authorization", "Bearer t"), ("x-request-id", "r1")), id="token"
        ),
        pytest.param(
            ["Bearer a", "Bearer b"],
            (("authorization", "Bearer a"), ("authorization", "Bearer b"), ("x-request-id", "r1")),
            id="two-headers-both-passed",
        ),
        pytest.param(
            ["Bearer caf\u00e9"],
            (("authorization", ""), ("x-request-id", "r1")),
            id="unprintable-sent-empty",
        ),
    ],
)
def test_outbound(authorization: list[str], expected: tuple[tuple[str, str], ...]) -> None:
    """Authorization values (emptied when gRPC cannot carry them) and the request id are sent."""
    assert outbound(authorization, "r1") == expected


# -- through the bridge -----------------------------------------------------------------------


@dataclass
class Recorded:
    path: str
    timeout: float | None
    metadata: tuple[tuple[str, str], ...]


@dataclass
class FakeChannel:
    """Stands in for grpc.aio.Channel: every call succeeds with an empty reply and is recorded."""

    calls: list[Recorded] = field(default_factory=list)

    def unary_unary(
        self,
        path: str,
        request_serializer: Callable[[Any], bytes],
        response_deserializer: Callable[[bytes], Any],
    ) -> Callable[..., Any]:
        async def call(
            request: Any,
            timeout: float | None = None,  # noqa: ASYNC109 (grpc.aio call signature)
            metadata: Any = None,
        ) -> Any:
            request_serializer(request)
            self.calls.append(Recorded(path, timeout, tuple(metadata or ())))
            return response_deserializer(b"")

        return call

    def unary_stream(self, path: str, **_: Any) -> Callable[..., Any]:
        """Streaming routes are built too; these tests never call them."""
        return lambda *args, **kwargs: None


@pytest.fixture
def channel() -> FakeChannel:
    """A fake channel recording every call."""
    return FakeChannel()


@pytest.fixture
def client(channel: FakeChannel) -> httpx.AsyncClient:
    """An HTTP client wired to the bridge app in-process, over the fake channel."""
    app = create_app(
        BridgeConfig(timeout=CAP),
        cast(grpc.aio.Channel, channel),
        load_schema(default_descriptor_set()),
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bridge")


@pytest.mark.anyio
async def test_only_allowed_headers_forwarded(
    client: httpx.AsyncClient, channel: FakeChannel
) -> None:
    """Of all request headers, only Authorization and X-Request-Id reach the gRPC server."""
    async with client:
        response = await client.get(
            "/v1/checkpoints/box",
            headers={
                "Authorization": "Bearer secret-token",
                "X-Request-Id": "req-42",
                "Cookie": "session=abc",
                "X-Forwarded-For": "10.0.0.1",
                "Grpc-Metadata-Foo": "bar",
                "User-Agent": "tester",
            },
        )
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] == "req-42"
    [call] = channel.calls
    assert call.path == "/checkpoint.v1.CheckpointService/GetCheckpoint"
    assert _chosen(call.metadata) == (
        ("authorization", "Bearer secret-token"),
        ("x-request-id", "req-42"),
    )


@pytest.mark.anyio
async def test_generated_request_id_forwarded_and_returned(
    client: httpx.AsyncClient, channel: FakeChannel
) -> None:
    """Without X-Request-Id, the bridge makes one, forwards it and returns it."""
    async with client:
        response = await client.get("/v1/checkpoints", headers={"X-Request-Id": "bad id"})
    rid = response.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid)
    assert _chosen(channel.calls[0].metadata) == (("x-request-id", rid),)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(None, CAP, id="default"),
        pytest.param("500m", 0.5, id="shortened"),
        pytest.param("1H", CAP, id="capped"),
    ],
)
async def test_grpc_timeout_sets_call_deadline(
    client: httpx.AsyncClient, channel: FakeChannel, header: str | None, expected: float
) -> None:
    """The call's deadline is Grpc-Timeout capped by the configured timeout."""
    headers = {} if header is None else {"Grpc-Timeout": header}
    async with client:
        response = await client.get("/v1/checkpoints", headers=headers)
    assert response.status_code == 200
    assert channel.calls[0].timeout == pytest.approx(expected)


@pytest.mark.anyio
async def test_malformed_grpc_timeout_is_422(
    client: httpx.AsyncClient, channel: FakeChannel
) -> None:
    """A malformed Grpc-Timeout is 422 invalid_argument and no call is made."""
    async with client:
        response = await client.get("/v1/checkpoints", headers={"Grpc-Timeout": "soon"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_argument"
    assert channel.calls == []


def _chosen(metadata: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """Metadata without the bridge's own trace context (traceparent and tracestate appear once a
    tracer provider is installed in the process, as an earlier test may have done)."""
    return tuple((k, v) for k, v in metadata if k not in ("traceparent", "tracestate"))
