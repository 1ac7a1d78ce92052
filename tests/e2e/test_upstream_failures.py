"""429, 503 and 504 through the real bridge: a rate-limited server, a dead upstream, deadlines.

429 and 503 come from real processes (a second server started with --rate-limit 1 --rate-burst 1,
and a bridge whose upstream port has nothing listening). 504 needs an upstream slower than the
deadline, so a stand-in gRPC server in this process holds GetCheckpoint until the caller gives up.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import pytest
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.e2e import (
    Bridge,
    GrpcServer,
    StandInUpstream,
    Tokens,
    bearer,
    hold,
    http_client,
    start_bridge,
    start_server,
)

SLOW_CALL_SECONDS = 5.0


@pytest.fixture(scope="module")
def limited_server(e2e_dir: Path, e2e_tokens: Tokens) -> Iterator[GrpcServer]:
    """A second server allowing one request per second per token, with a burst of one."""
    database = f"sqlite:///{e2e_dir / 'limited.db'}"
    server = start_server(
        "limited-server",
        e2e_dir,
        database,
        e2e_tokens.path,
        extra=["--rate-limit", "1", "--rate-burst", "1"],
    )
    yield server
    server.process.stop()


@pytest.fixture(scope="module")
def limited_http(e2e_dir: Path, limited_server: GrpcServer) -> Iterator[httpx.Client]:
    """A client of a bridge in front of limited_server."""
    started = start_bridge("limited-bridge", e2e_dir, limited_server.address)
    with http_client(started.base_url) as client:
        yield client
    started.process.stop()


@pytest.fixture(scope="module")
def dead_upstream_http(e2e_dir: Path) -> Iterator[httpx.Client]:
    """A client of a bridge whose upstream port has nothing listening (ready by /healthz).

    The port stays bound, never listening, for the module: a free port let go could be the one
    the bridge then listens on (it was, once), making the bridge its own upstream."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as dead:
        dead.bind(("127.0.0.1", 0))
        upstream = f"127.0.0.1:{dead.getsockname()[1]}"
        started = start_bridge("dead-upstream-bridge", e2e_dir, upstream, ready="/healthz")
        with http_client(started.base_url) as client:
            yield client
        started.process.stop()


@pytest.fixture(scope="module")
def slow_upstream() -> Iterator[str]:
    """A stand-in gRPC server, SERVING by health, whose GetCheckpoint never answers in time.

    The real server answers a lookup in well under a millisecond, faster than gRPC's deadline
    timer fires, so a tiny Grpc-Timeout in front of it is 504 only by chance; this one holds
    each call until its caller gives up (at most SLOW_CALL_SECONDS).
    """

    def get_checkpoint(
        request: svc.GetCheckpointRequest, context: grpc.ServicerContext
    ) -> svc.GetCheckpointResponse:
        hold(context, SLOW_CALL_SECONDS)
        return svc.GetCheckpointResponse()

    upstream = StandInUpstream(get_checkpoint, workers=4)
    yield upstream.address
    upstream.stop(SLOW_CALL_SECONDS)


@pytest.fixture(scope="module")
def slow_bridges(e2e_dir: Path, slow_upstream: str) -> Iterator[dict[str, Bridge]]:
    """Two bridges in front of slow_upstream, started together: "slow" with the default
    deadline (10 s) and "hasty" with --timeout 0.3."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            "slow": pool.submit(start_bridge, "slow-bridge", e2e_dir, slow_upstream),
            "hasty": pool.submit(
                start_bridge, "hasty-bridge", e2e_dir, slow_upstream, ["--timeout", "0.3"]
            ),
        }
    started = {name: f.result() for name, f in futures.items() if f.exception() is None}
    try:
        for future in futures.values():
            future.result()
        yield started
    finally:
        for bridge in started.values():
            bridge.process.stop()


def test_rate_limit_is_429_with_retry_after(limited_http: httpx.Client, e2e_tokens: Tokens) -> None:
    """Past a token's burst the server's RESOURCE_EXHAUSTED is 429 with Retry-After in seconds."""
    statuses: list[int] = []
    response = None
    for _ in range(5):
        response = limited_http.get("/v1/checkpoints/example", headers=bearer(e2e_tokens.read))
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert response is not None
    assert statuses[-1] == 429, statuses
    assert set(statuses[:-1]) <= {404}, statuses
    assert response.json()["error"]["code"] == "resource_exhausted"
    assert response.headers["Retry-After"].isdigit()
    assert 1 <= int(response.headers["Retry-After"]) <= 2
    assert e2e_tokens.read not in response.text


def test_rate_limit_is_per_token(limited_http: httpx.Client, e2e_tokens: Tokens) -> None:
    """Right after one token is limited, another token's first call still goes through."""
    statuses = [
        limited_http.get("/v1/checkpoints/example", headers=bearer(e2e_tokens.read)).status_code
        for _ in range(3)
    ]
    assert 429 in statuses
    # The read-write token has not called this server before: its bucket is full.
    response = limited_http.get("/v1/checkpoints/example", headers=bearer(e2e_tokens.both))
    assert response.status_code == 404


def test_rate_limit_over_grpc_carries_retry_info(
    limited_server: GrpcServer, e2e_tokens: Tokens
) -> None:
    """Over gRPC the rate limit is RESOURCE_EXHAUSTED with a google.rpc.RetryInfo detail."""
    metadata = (("authorization", f"Bearer {e2e_tokens.read}"),)
    request = svc.GetCheckpointRequest(checkpoint_id="example")
    with grpc.insecure_channel(limited_server.address) as channel:
        stub = svc_grpc.CheckpointServiceStub(channel)
        codes: list[grpc.StatusCode] = []
        error: grpc.RpcError | None = None
        for _ in range(5):
            try:
                stub.GetCheckpoint(request, metadata=metadata, timeout=10)
            except grpc.RpcError as exc:
                codes.append(exc.code())
                error = exc
                if codes[-1] is grpc.StatusCode.RESOURCE_EXHAUSTED:
                    break
    assert codes[-1] is grpc.StatusCode.RESOURCE_EXHAUSTED, codes
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    infos = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    assert len(infos) == 1
    info = error_details_pb2.RetryInfo()
    infos[0].Unpack(info)
    assert 0 < info.retry_delay.ToTimedelta().total_seconds() <= 1


@pytest.mark.parametrize("with_token", [True, False], ids=["token", "no-token"])
def test_unreachable_upstream_is_503(
    dead_upstream_http: httpx.Client, e2e_tokens: Tokens, with_token: bool
) -> None:
    """With no gRPC server to forward to, a call is 503 unavailable, naming no address."""
    headers = {"X-Request-Id": "dead-1", **(bearer(e2e_tokens.read) if with_token else {})}
    response = dead_upstream_http.get("/v1/checkpoints/example", headers=headers)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
    assert response.headers["X-Request-Id"] == "dead-1"
    assert "127.0.0.1" not in response.text
    assert e2e_tokens.read not in response.text


def test_readyz_is_503_while_healthz_is_200_without_upstream(
    dead_upstream_http: httpx.Client,
) -> None:
    """Readiness follows the gRPC server (503 unavailable); liveness only the bridge (200)."""
    ready = dead_upstream_http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["error"]["code"] == "unavailable"
    assert dead_upstream_http.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("which", "grpc_timeout"),
    [
        pytest.param("slow", "200m", id="grpc-timeout-shortens-the-default"),
        pytest.param("slow", "300000u", id="grpc-timeout-in-microseconds"),
        pytest.param("hasty", None, id="configured-timeout"),
        pytest.param("hasty", "1H", id="grpc-timeout-cannot-extend-the-cap"),
        pytest.param("hasty", "30S", id="grpc-timeout-30s-capped"),
    ],
)
def test_no_answer_within_the_deadline_is_504(
    slow_bridges: dict[str, Bridge],
    e2e_tokens: Tokens,
    which: str,
    grpc_timeout: str | None,
) -> None:
    """An upstream that does not answer in time is 504 deadline_exceeded, well before 10 s."""
    bridge = slow_bridges[which]
    headers = {**bearer(e2e_tokens.read), "X-Request-Id": "slow-1"}
    if grpc_timeout is not None:
        headers["Grpc-Timeout"] = grpc_timeout
    with http_client(bridge.base_url) as client:
        started = time.monotonic()
        response = client.get("/v1/checkpoints/example", headers=headers)
        elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "deadline_exceeded"
    assert response.headers["X-Request-Id"] == "slow-1"
    assert 0.15 <= elapsed < SLOW_CALL_SECONDS, elapsed


def test_generous_grpc_timeout_still_succeeds(http: httpx.Client, e2e_tokens: Tokens) -> None:
    """A Grpc-Timeout the real server easily meets changes nothing: the usual 200."""
    headers = {**bearer(e2e_tokens.read), "Grpc-Timeout": "5S"}
    response = http.get("/v1/checkpoints/example", headers=headers)
    assert response.status_code == 200
    assert response.json()["data"]["display_name"] == "example"
