"""A real grpc.aio server on 127.0.0.1:0 with a stand-in CheckpointService, and the bridge over it.

The stand-in answers every RPC from a behaviour the test chooses (an answer, a slow or held
call, a rich-status failure) and records each call's request and metadata. `open_bridge`
builds the real ASGI app (rest_bridge.app.create_app) on a real grpc.aio channel and an
httpx client that calls it in-process through httpx.ASGITransport.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import google.rpc.error_details_pb2 as error_details_pb2
import google.rpc.status_pb2 as status_pb2
import grpc
import httpx
from checkpoint.v1 import checkpoint_pb2 as pb
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc
from google.protobuf import duration_pb2, message, timestamp_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from rest_bridge.app import create_app
from rest_bridge.config import BridgeConfig
from rest_bridge.descriptor_set import DEFAULT_SERVICES, Schema, default_descriptor_set, load_schema

BASE_URL = "http://bridge"
CHECKPOINT_ID = "5b0c9e8a-3f6d-4a21-9c7e-1d2f3a4b5c6d"
Behaviour = Callable[[message.Message, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


def checkpoint(
    checkpoint_id: str = CHECKPOINT_ID, name: str = "ubuntu-24.04-base"
) -> pb.Checkpoint:
    """A ready checkpoint with every field set, as the real server would return it."""
    return pb.Checkpoint(
        id=checkpoint_id,
        display_name=name,
        resources=pb.Resources(
            limits=pb.ResourceLimits(memory_mib=4096),
            requests=pb.ResourceRequests(memory_mib=2048, vcpus=2),
        ),
        state=pb.CheckpointState.CHECKPOINT_STATE_READY,
        create_time=timestamp_pb2.Timestamp(seconds=1772442900),
        update_time=timestamp_pb2.Timestamp(seconds=1772443062),
        etag="v1",
    )


CHECKPOINT_JSON: dict[str, object] = {
    "id": CHECKPOINT_ID,
    "display_name": "ubuntu-24.04-base",
    "resources": {"limits": {"memory_mib": 4096}, "requests": {"memory_mib": 2048, "vcpus": 2}},
    "state": "ready",
    "create_time": "2026-03-02T09:15:00Z",
    "update_time": "2026-03-02T09:17:42Z",
    "etag": "v1",
}
"""checkpoint() in the REST data shape."""


def rich_status(
    code: grpc.StatusCode,
    message_text: str,
    *,
    retry_delay: float | None = None,
    violations: Sequence[tuple[str, str]] = (),
) -> grpc.Status:
    """A status with google.rpc details (RetryInfo, BadRequest), as the real server sends."""
    status = status_pb2.Status(code=code.value[0], message=message_text)
    if retry_delay is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(retry_delay * 1e9))
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    if violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in violations
            ]
        )
        status.details.add().Pack(bad)
    converted: grpc.Status = rpc_status.to_status(status)
    return converted


def answer(reply: message.Message) -> Behaviour:
    """A behaviour that returns reply at once."""

    async def behave(request: message.Message, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        return reply

    return behave


def fail(status: grpc.Status) -> Behaviour:
    """A behaviour that aborts with status (code, message and its rich details)."""

    async def behave(request: message.Message, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(status.code, status.details, status.trailing_metadata)

    return behave


def fail_plain(code: grpc.StatusCode, details: str) -> Behaviour:
    """A behaviour that aborts with code and details only (no google.rpc.Status)."""

    async def behave(request: message.Message, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, details)

    return behave


@dataclass
class Call:
    """One call the stand-in received."""

    method: str
    request: message.Message
    metadata: tuple[tuple[str, str | bytes], ...]
    time_remaining: float | None

    def forwarded(self) -> dict[str, list[str | bytes]]:
        """The metadata a client chose, without what grpcio adds itself (user-agent, grpc-*) and
        the bridge's own trace context (traceparent, present once a tracer provider is set)."""
        out: dict[str, list[str | bytes]] = {}
        for key, value in self.metadata:
            if key not in _ADDED and not key.startswith(("grpc-", ":")):
                out.setdefault(key, []).append(value)
        return out


_ADDED = frozenset({"user-agent", "traceparent", "tracestate"})


@dataclass
class StandIn(svc_grpc.CheckpointServiceServicer):
    """CheckpointService answering from behaviours[method name] (default: a checkpoint)."""

    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a call arrives (before its behaviour runs)."""
    release: asyncio.Event = field(default_factory=asyncio.Event)
    """What a `hold` behaviour waits for."""
    watch_events: list[message.Message] = field(default_factory=list)
    """What WatchCheckpoints streams before it holds."""

    def hold(self, reply: message.Message) -> Behaviour:
        """A behaviour that waits for `release` (or the deadline), then returns reply."""

        async def behave(
            request: message.Message, context: grpc.aio.ServicerContext[Any, Any]
        ) -> Any:
            await self.release.wait()
            return reply

        return behave

    async def _serve(
        self, name: str, request: message.Message, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Any:
        self.calls.append(
            Call(
                name, request, tuple(context.invocation_metadata() or ()), context.time_remaining()
            )
        )
        self.entered.set()
        behaviour = self.behaviours.get(name)
        if behaviour is None:
            return _DEFAULTS[name]
        return await behaviour(request, context)

    async def GetCheckpoint(self, request: Any, context: Any) -> Any:
        return await self._serve("GetCheckpoint", request, context)

    async def ListCheckpoints(self, request: Any, context: Any) -> Any:
        return await self._serve("ListCheckpoints", request, context)

    async def CreateCheckpoint(self, request: Any, context: Any) -> Any:
        return await self._serve("CreateCheckpoint", request, context)

    async def UpdateCheckpoint(self, request: Any, context: Any) -> Any:
        return await self._serve("UpdateCheckpoint", request, context)

    async def DeleteCheckpoint(self, request: Any, context: Any) -> Any:
        return await self._serve("DeleteCheckpoint", request, context)

    async def WatchCheckpoints(self, request: Any, context: Any) -> AsyncIterator[Any]:
        """Yields `watch_events`, then waits for `release` (the stream stays open)."""
        await self._serve("WatchCheckpoints", request, context)
        for event in self.watch_events:
            yield event
        await self.release.wait()


_DEFAULTS: dict[str, message.Message] = {
    "GetCheckpoint": svc.GetCheckpointResponse(checkpoint=checkpoint()),
    "ListCheckpoints": svc.ListCheckpointsResponse(checkpoints=[checkpoint()]),
    "CreateCheckpoint": svc.CreateCheckpointResponse(checkpoint=checkpoint()),
    "UpdateCheckpoint": svc.UpdateCheckpointResponse(checkpoint=checkpoint()),
    "DeleteCheckpoint": svc.DeleteCheckpointResponse(checkpoint=checkpoint()),
    "WatchCheckpoints": svc.WatchCheckpointsResponse(),
}


@dataclass
class Upstream:
    """The started server, its address, the stand-in and the health servicer."""

    server: grpc.aio.Server
    address: str
    standin: StandIn
    health: Any
    """grpc_health.v1.health.aio.HealthServicer (untyped)."""

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse
        await self.health.set("", status.SERVING if serving else status.NOT_SERVING)


@asynccontextmanager
async def start_upstream() -> AsyncIterator[Upstream]:
    """A grpc.aio server on 127.0.0.1:0 in the running loop, SERVING, stopped on exit."""
    server = grpc.aio.server()
    standin = StandIn()
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    svc_grpc.add_CheckpointServiceServicer_to_server(standin, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    upstream = Upstream(server, f"127.0.0.1:{port}", standin, health_servicer)
    await upstream.set_serving(True)
    try:
        yield upstream
    finally:
        standin.release.set()
        await server.stop(None)


@contextmanager
def dead_address() -> Iterator[str]:
    """An address nothing listens on: a port bound (so no one else takes it) but not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


_SCHEMA: list[Schema] = []


def schema() -> Schema:
    """The checkpoint.v1 schema shipped with the package, loaded once per session."""
    if not _SCHEMA:
        _SCHEMA.append(load_schema(default_descriptor_set(), DEFAULT_SERVICES))
    return _SCHEMA[0]


@dataclass
class Bridge:
    """The bridge's ASGI app over a channel to an upstream, and an in-process client for it."""

    app: Any
    client: httpx.AsyncClient
    config: BridgeConfig
    channel: grpc.aio.Channel


@asynccontextmanager
async def open_bridge(address: str, **config: Any) -> AsyncIterator[Bridge]:
    """create_app over a real grpc.aio channel to address, with BridgeConfig(**config)."""
    settings = BridgeConfig(upstream=address, **config)
    channel = grpc.aio.insecure_channel(address)
    app = create_app(settings, channel, schema())
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield Bridge(app, client, settings, channel)
    finally:
        await channel.close(None)
