"""Readiness follows the database: PostgreSQL down -> NOT_SERVING and fast 503s; back -> serving.

The server runs on a private PostgreSQL of its own (stopped and restarted on the same port), so
the session's shared database is never disturbed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e import (
    READ_SCOPE,
    WRITE_SCOPE,
    Bridge,
    GrpcServer,
    bearer,
    create_token,
    start_bridge,
    start_server,
)
from tests.pg import ThrowawayPostgres, find_postgres_bindir, missing_binaries

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SETTLE = 8.0
"""Seconds a health change may take to show (the server pings its store every second)."""


class _Setup:
    def __init__(self, pg: ThrowawayPostgres, server: GrpcServer, bridge: Bridge, token: str):
        self.pg, self.server, self.bridge, self.token = pg, server, bridge, token


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Setup]:
    """A private PostgreSQL, a server on it and a bridge in front."""
    bindir = find_postgres_bindir()
    if bindir is None:
        missing_binaries()
    work: Path = tmp_path_factory.mktemp("store-health")
    pg = ThrowawayPostgres(bindir)
    pg.start()
    try:
        token = create_token(work / "tokens.json", "health", [READ_SCOPE, WRITE_SCOPE])
        server = start_server("pg-server", work, pg.url, work / "tokens.json")
        try:
            bridge = start_bridge("pg-bridge", work, server.address)
            try:
                yield _Setup(pg, server, bridge, token)
            finally:
                bridge.process.stop()
        finally:
            server.process.stop()
    finally:
        pg.stop()
        pg.remove()


def _health(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)  # type: ignore[no-untyped-call]
        reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
        status: int = reply.status
        return status


def _wait_for_health(address: str, wanted: int) -> float:
    start = time.monotonic()
    while time.monotonic() - start < SETTLE:
        if _health(address) == wanted:
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"health did not become {wanted} within {SETTLE} s")


def test_readiness_follows_the_database(setup: _Setup) -> None:
    """Stopping PostgreSQL turns health NOT_SERVING and calls 503 fast; restarting it heals."""
    base, headers = setup.bridge.base_url, bearer(setup.token)
    assert _health(setup.server.address) == SERVING
    assert httpx.get(f"{base}/v1/checkpoints", headers=headers, timeout=5).status_code == 200

    setup.pg.stop()
    _wait_for_health(setup.server.address, NOT_SERVING)
    assert httpx.get(f"{base}/readyz", timeout=5).status_code == 503
    started = time.monotonic()
    down = httpx.get(f"{base}/v1/checkpoints/anything", headers=headers, timeout=10)
    elapsed = time.monotonic() - started
    assert down.status_code == 503, down.text
    assert down.json()["error"]["code"] == "unavailable"
    assert "postgres" not in down.text.lower()
    assert elapsed < 5.0, f"a call with the database down took {elapsed:.1f} s"

    setup.pg.restart()
    _wait_for_health(setup.server.address, SERVING)
    assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
    assert httpx.get(f"{base}/v1/checkpoints", headers=headers, timeout=5).status_code == 200
