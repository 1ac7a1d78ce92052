"""The gRPC port's limits, each against the real grpc.aio server on a 127.0.0.1 socket.

Message size both ways and metadata size through a grpc.aio channel; streams per connection,
ping abuse, idle and age (with its grace) through a raw HTTP/2 client that sends what grpcio
clients never would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

import grpc
import h2.errors
import h2.events
import pytest
from checkpoint.v1 import checkpoint_pb2 as pb
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc
from h2.settings import SettingCodes

from server.__main__ import build_parser
from server.app import RunningServer, create_server
from server.config import ServerConfig
from server.grpc_limits import LIMIT_FLAGS, GrpcLimits, limits_from
from server.store import open_store
from server.tokens import TokenRecord, hash_token
from tests.server.h2_client import EOF, Event, RawH2, server_settings, terminated

pytestmark = pytest.mark.anyio

TOKEN = "ckpt_limits"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
GET = "/checkpoint.v1.CheckpointService/GetCheckpoint"
T = TypeVar("T")


def _tokens() -> dict[str, TokenRecord]:
    scopes = frozenset({"checkpoints:read", "checkpoints:write"})
    return {hash_token(TOKEN): TokenRecord("limits", hash_token(TOKEN), scopes)}


async def _server(tmp_path: Path, limits: GrpcLimits) -> AsyncIterator[RunningServer]:
    store = open_store(f"sqlite:///{tmp_path}/db.sqlite")
    config = ServerConfig(listen="127.0.0.1:0", rate_limit=0, limits=limits)
    running = await create_server(config, store, _tokens())
    try:
        yield running
    finally:
        await running.server.stop(None)
        await store.close()


async def _raw(running: RunningServer, use: Callable[[RawH2], T]) -> T:
    """Run a blocking raw-HTTP/2 exchange beside the server's event loop."""

    def run() -> T:
        client = RawH2(running.port)
        try:
            return use(client)
        finally:
            client.close()

    return await asyncio.to_thread(run)


async def _code(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code()


async def test_message_size_is_limited_both_ways(tmp_path: Path) -> None:
    """A request or a response larger than --max-message-bytes is RESOURCE_EXHAUSTED."""
    async for running in _server(tmp_path, GrpcLimits(max_message_bytes=4096)):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = svc_grpc.CheckpointServiceStub(channel)
            big = svc.GetCheckpointRequest(checkpoint_id="x" * 5000)
            assert await _code(stub.GetCheckpoint(big, metadata=AUTH)) == (
                grpc.StatusCode.RESOURCE_EXHAUSTED
            )
            small = svc.GetCheckpointRequest(checkpoint_id="x" * 100)
            assert await _code(stub.GetCheckpoint(small, metadata=AUTH)) == (
                grpc.StatusCode.NOT_FOUND
            )
            for n in range(40):
                checkpoint = pb.Checkpoint(
                    display_name=f"checkpoint-{n:03d}-" + "n" * 100,
                    resources=pb.Resources(
                        limits=pb.ResourceLimits(memory_mib=2048),
                        requests=pb.ResourceRequests(memory_mib=1024, vcpus=2),
                    ),
                )
                request = svc.CreateCheckpointRequest(checkpoint=checkpoint)
                await stub.CreateCheckpoint(request, metadata=AUTH)
            page = await stub.ListCheckpoints(
                svc.ListCheckpointsRequest(page_size=5), metadata=AUTH
            )
            assert len(page.checkpoints) == 5
            everything = svc.ListCheckpointsRequest(page_size=40)
            assert await _code(stub.ListCheckpoints(everything, metadata=AUTH)) == (
                grpc.StatusCode.RESOURCE_EXHAUSTED
            )


async def test_metadata_size_is_limited(tmp_path: Path) -> None:
    """Metadata over --max-metadata-bytes is RESOURCE_EXHAUSTED before the servicer runs (the
    hard limit: never sampled in); under it is served."""
    async for running in _server(tmp_path, GrpcLimits(max_metadata_bytes=2048)):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = svc_grpc.CheckpointServiceStub(channel)
            request = svc.GetCheckpointRequest(checkpoint_id="missing")
            fits = (*AUTH, ("x-padding", "p" * 1000))
            assert await _code(stub.GetCheckpoint(request, metadata=fits)) == (
                grpc.StatusCode.NOT_FOUND
            )
            too_big = (*AUTH, ("x-padding", "p" * 4000))
            assert await _code(stub.GetCheckpoint(request, metadata=too_big)) == (
                grpc.StatusCode.RESOURCE_EXHAUSTED
            )
        events = await _raw(running, lambda c: c.read(2, until=h2.events.SettingsAcknowledged))
        assert server_settings(events)[SettingCodes.MAX_HEADER_LIST_SIZE] == 2048


async def test_concurrent_streams_per_connection_are_limited(tmp_path: Path) -> None:
    """The server announces --max-concurrent-streams and refuses a stream past it."""

    def exchange(client: RawH2) -> tuple[dict[int, int], list[Event]]:
        settings = server_settings(client.read(2, until=h2.events.SettingsAcknowledged))
        client.open_call(1, GET, AUTH)
        client.open_call(3, GET, AUTH)
        client.ignore_stream_limit()
        client.open_call(5, GET, AUTH)
        return settings, list(client.read(3, until=h2.events.StreamReset))

    async for running in _server(tmp_path, GrpcLimits(max_concurrent_streams=2)):
        settings, events = await _raw(running, exchange)
        assert settings[SettingCodes.MAX_CONCURRENT_STREAMS] == 2
        resets = [e for e in events if isinstance(e, h2.events.StreamReset)]
        assert [(r.stream_id, r.error_code) for r in resets] == [
            (5, h2.errors.ErrorCodes.REFUSED_STREAM)
        ]


async def test_a_client_pinging_too_often_gets_goaway(tmp_path: Path) -> None:
    """Pings faster than the keepalive policy allows end in GOAWAY too_many_pings, not service."""

    def flood(client: RawH2) -> tuple[int, list[Event]]:
        client.read(2, until=h2.events.SettingsAcknowledged)
        sent = 0
        events: list[Event] = []
        for n in range(50):  # bounded: the default policy allows 2 strikes
            client.conn.ping(n.to_bytes(8, "big"))
            client.flush()
            sent += 1
            events += client.read(0.05)
            if terminated(events) is not None or client.closed:
                break
        events += client.read(2, until=EOF)
        return sent, events

    async for running in _server(tmp_path, GrpcLimits()):
        sent, events = await _raw(running, flood)
        goaway = terminated(events)
        assert goaway is not None
        assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        assert goaway.additional_data == b"too_many_pings"
        assert sent <= 4
        assert events[-1] == EOF


async def test_pings_within_the_policy_are_answered(tmp_path: Path) -> None:
    """With calls permitted to be pinged without and a short interval, spaced pings are served."""

    def ping_slowly(client: RawH2) -> list[Event]:
        client.read(2, until=h2.events.SettingsAcknowledged)
        events: list[Event] = []
        for n in range(4):
            client.conn.ping(n.to_bytes(8, "big"))
            client.flush()
            events += client.read(0.3)
        return events

    limits = GrpcLimits(min_ping_interval_seconds=0.1, permit_keepalive_without_calls=True)
    async for running in _server(tmp_path, limits):
        events = await _raw(running, ping_slowly)
        assert terminated(events) is None
        assert sum(isinstance(e, h2.events.PingAckReceived) for e in events) == 4


async def test_an_idle_connection_is_closed(tmp_path: Path) -> None:
    """A connection with no call open for --max-connection-idle gets GOAWAY, then a new call
    on a fresh connection is served."""
    limits = GrpcLimits(max_connection_idle_seconds=0.5, max_connection_age_seconds=0)
    async for running in _server(tmp_path, limits):
        started = time.monotonic()
        events = await _raw(running, lambda c: c.read(5, until=h2.events.ConnectionTerminated))
        waited = time.monotonic() - started
        goaway = terminated(events)
        assert goaway is not None
        assert goaway.additional_data == b"connection idle"
        assert 0.4 <= waited < 3
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = svc_grpc.CheckpointServiceStub(channel)
            request = svc.GetCheckpointRequest(checkpoint_id="missing")
            assert await _code(stub.GetCheckpoint(request, metadata=AUTH)) == (
                grpc.StatusCode.NOT_FOUND
            )


async def test_an_old_connection_gets_goaway_then_closes_after_the_grace(tmp_path: Path) -> None:
    """Past --max-connection-age a busy connection gets GOAWAY, and its open call is cut off
    after --max-connection-age-grace instead of holding the connection forever."""

    def hold_a_call(client: RawH2) -> tuple[float, float, list[Event]]:
        started = time.monotonic()
        client.read(2, until=h2.events.SettingsAcknowledged)
        client.open_call(1, GET, AUTH)  # never sends its message: the call stays open
        events: list[Event] = list(client.read(5, until=h2.events.ConnectionTerminated))
        goaway_at = time.monotonic() - started
        events += client.read(5, until=EOF)
        return goaway_at, time.monotonic() - started, events

    limits = GrpcLimits(
        max_connection_idle_seconds=0,
        max_connection_age_seconds=0.5,
        max_connection_age_grace_seconds=0.5,
    )
    async for running in _server(tmp_path, limits):
        goaway_at, closed_at, events = await _raw(running, hold_a_call)
        assert terminated(events) is not None
        assert 0.4 <= goaway_at < 2
        assert events[-1] == EOF
        assert goaway_at + 0.3 <= closed_at < goaway_at + 3
        assert not any(isinstance(e, h2.events.StreamEnded) for e in events)


def test_every_limit_is_a_flag_and_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each limit reads its flag, else its environment variable, else the documented default."""
    assert limits_from(vars(build_parser().parse_args(["serve"]))) == GrpcLimits()
    monkeypatch.setenv("CHECKPOINT_MAX_CONNECTION_AGE", "60")
    monkeypatch.setenv("CHECKPOINT_KEEPALIVE_PERMIT_WITHOUT_CALLS", "true")
    args = build_parser().parse_args(["serve", "--max-metadata-bytes", "4096"])
    limits = limits_from(vars(args))
    assert limits.max_connection_age_seconds == 60
    assert limits.permit_keepalive_without_calls is True
    assert limits.max_metadata_bytes == 4096
    assert {row.flag for row in LIMIT_FLAGS} >= {"--max-message-bytes", "--max-connection-idle"}


@pytest.mark.parametrize(
    "argv",
    [
        ["--max-message-bytes", "0"],
        ["--max-connection-idle", "-1"],
        ["--keepalive-permit-without-calls", "maybe"],
    ],
)
def test_a_bad_limit_is_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """A limit that cannot be meant is refused at start, naming the flag."""
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["serve", *argv])
    assert stopped.value.code == 2
    assert argv[0] in capsys.readouterr().err
