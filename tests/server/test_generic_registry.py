"""Services added through server.generic_registry answer over a real port as registered ones do."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from server.generic_registry import generic_only

pytestmark = pytest.mark.anyio

ECHO = "/test.Echo/Say"


class _Servicer(svc_grpc.CheckpointServiceServicer):
    def __init__(self) -> None:
        self.calls = 0

    async def GetCheckpoint(
        self, request: svc.GetCheckpointRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> svc.GetCheckpointResponse:
        self.calls += 1
        response = svc.GetCheckpointResponse()
        response.checkpoint.id = request.checkpoint_id
        return response


async def _say(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return b"said " + request


@pytest.fixture
async def port() -> AsyncIterator[tuple[grpc.aio.Channel, _Servicer]]:
    server = grpc.aio.server()
    registry = generic_only(server)
    servicer = _Servicer()  # type: ignore[abstract]  # only GetCheckpoint is called
    # Generated code: the service as a generic handler and as registered methods.
    svc_grpc.add_CheckpointServiceServicer_to_server(servicer, registry)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]  # stubs lack health.aio
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, registry)  # type: ignore[no-untyped-call]  # untyped
    # A service given only as registered methods, no generic handler of its own.
    say = grpc.unary_unary_rpc_method_handler(_say)
    registry.add_registered_method_handlers("test.Echo", {"Say": say})  # type: ignore[attr-defined]  # not in grpc-stubs
    number = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{number}")
    try:
        yield channel, servicer
    finally:
        await channel.close(None)
        await server.stop(None)


async def test_generated_services_answer_once(port: tuple[grpc.aio.Channel, _Servicer]) -> None:
    channel, servicer = port
    stub = svc_grpc.CheckpointServiceStub(channel)
    for number in range(3):
        answer = await stub.GetCheckpoint(svc.GetCheckpointRequest(checkpoint_id=f"id-{number}"))
        assert answer.checkpoint.id == f"id-{number}"
    assert servicer.calls == 3
    health_stub = health_pb2_grpc.HealthStub(channel)  # type: ignore[no-untyped-call]  # untyped
    checked = await health_stub.Check(health_pb2.HealthCheckRequest())
    assert checked.status == health_pb2.HealthCheckResponse.SERVING


async def test_registered_only_service_answers(port: tuple[grpc.aio.Channel, _Servicer]) -> None:
    channel, _ = port
    say = channel.unary_unary(ECHO, request_serializer=None, response_deserializer=None)
    assert await say(b"hello") == b"said hello"


async def test_unknown_method_is_unimplemented(port: tuple[grpc.aio.Channel, _Servicer]) -> None:
    channel, _ = port
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await channel.unary_unary(
            "/test.Echo/Shout", request_serializer=None, response_deserializer=None
        )(b"hello")
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
