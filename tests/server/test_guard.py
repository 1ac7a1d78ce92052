"""CallGuard on its own: a real grpc.aio server on port 0, a scripted servicer, a real channel.

The servicer and the limiter here only record what reached them and do what the test says, so
each test pins one step of the guard (auth, then rate limit, then the servicer, then error
translation) without a store or the rest of server.app.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from checkpoint.v1 import checkpoint_pb2 as pb
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from server.auth import SERVICE, Authenticator
from server.call_observer import current_caller
from server.errors import NotFound, RateLimited
from server.guard import INTERNAL_MESSAGE, CallGuard
from server.guarded import guarded
from server.reflection import enable_reflection
from server.tokens import READ_SCOPE, TokenRecord, hash_token

pytestmark = pytest.mark.anyio

READ_TOKEN = "guard_reader"
GET = f"/{SERVICE}/GetCheckpoint"
READ = (("authorization", f"Bearer {READ_TOKEN}"),)

Behavior = Callable[[svc.GetCheckpointRequest, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


class Servicer(svc_grpc.CheckpointServiceServicer):
    """GetCheckpoint runs `behavior` and records each request that reached it."""

    def __init__(self) -> None:
        self.requests: list[svc.GetCheckpointRequest] = []
        self.behavior: Behavior = self._echo

    async def _echo(
        self, request: svc.GetCheckpointRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> svc.GetCheckpointResponse:
        return svc.GetCheckpointResponse(
            checkpoint=pb.Checkpoint(display_name=f"echo {request.checkpoint_id}")
        )

    async def GetCheckpoint(
        self, request: svc.GetCheckpointRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Any:
        self.requests.append(request)
        return await self.behavior(request, context)

    async def _unused(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        raise NotImplementedError("these tests call only GetCheckpoint through the guard")

    ListCheckpoints = CreateCheckpoint = UpdateCheckpoint = DeleteCheckpoint = _unused

    async def WatchCheckpoints(
        self, request: svc.WatchCheckpointsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[svc.WatchCheckpointsResponse]:
        """Two events, then NotFound (an error after the first message); "boom": a bug."""
        self.requests.append(svc.GetCheckpointRequest(checkpoint_id=request.checkpoint_id))
        if request.checkpoint_id == "boom":
            raise ValueError("a bug")
        for token in ("t1", "t2"):
            yield svc.WatchCheckpointsResponse(type=svc.WATCH_EVENT_TYPE_SYNCED, resume_token=token)
        raise NotFound("gone mid-stream")


@dataclass
class Limiter:
    """Records the keys it is asked for; raises `refuse` when set."""

    keys: list[str] = field(default_factory=list)
    refuse: RateLimited | None = None

    async def acquire(self, key: str) -> None:
        self.keys.append(key)
        if self.refuse is not None:
            raise self.refuse

    async def aclose(self) -> None:
        """Nothing to release."""


@dataclass
class TakingLimiter(Limiter):
    """A limiter that never waits, so it also has `take`, as the local and shared ones do."""

    took: list[str] = field(default_factory=list)

    def take(self, key: str) -> None:
        self.took.append(key)
        self.keys.append(key)
        if self.refuse is not None:
            raise self.refuse


@dataclass
class Env:
    servicer: Servicer
    limiter: Limiter
    channel: grpc.aio.Channel
    stub: svc_grpc.CheckpointServiceAsyncStub


@pytest.fixture(params=["interceptor", "registration", "registration-take"])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    """Every test runs with the guard as a server interceptor and applied at registration
    (server.guarded, what server.app does), and with a limiter that has `take`: all must answer
    alike."""
    record = TokenRecord("reader", hash_token(READ_TOKEN), frozenset({READ_SCOPE}))
    limiter = TakingLimiter() if request.param.endswith("-take") else Limiter()
    guard = CallGuard(Authenticator({record.sha256: record}), limiter)
    if request.param == "interceptor":
        server = grpc.aio.server(interceptors=[guard])
        register = server
    else:
        server = grpc.aio.server()
        register = guarded(server, guard)
    servicer = Servicer()
    svc_grpc.add_CheckpointServiceServicer_to_server(servicer, register)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, register)  # type: ignore[no-untyped-call]
    enable_reflection(server, [SERVICE, health.SERVICE_NAME])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Env(servicer, limiter, channel, svc_grpc.CheckpointServiceStub(channel))
    finally:
        await channel.close(None)
        await server.stop(None)


async def _fails(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def _reason(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    raise AssertionError("no ErrorInfo in the status details")


async def test_an_authorized_call_reaches_the_servicer_after_the_limiter(env: Env) -> None:
    response = await env.stub.GetCheckpoint(
        svc.GetCheckpointRequest(checkpoint_id="x"), metadata=READ
    )
    assert response.checkpoint.display_name == "echo x"
    assert [r.checkpoint_id for r in env.servicer.requests] == ["x"]
    assert env.limiter.keys == ["reader"]


async def test_the_servicer_sees_the_token_name_as_the_caller(env: Env) -> None:
    """What CreateCheckpoint keys its idempotency records by (server.call_observer)."""
    seen: list[str] = []

    async def note(
        request: svc.GetCheckpointRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> svc.GetCheckpointResponse:
        seen.append(current_caller())
        return svc.GetCheckpointResponse()

    env.servicer.behavior = note
    await env.stub.GetCheckpoint(svc.GetCheckpointRequest(checkpoint_id="x"), metadata=READ)
    assert seen == ["reader"]
    assert current_caller() == ""


async def test_a_limiter_that_never_waits_is_asked_by_take(env: Env) -> None:
    """Unary calls use `take` where the limiter has it (no coroutine), acquire otherwise."""
    await env.stub.GetCheckpoint(svc.GetCheckpointRequest(checkpoint_id="x"), metadata=READ)
    if isinstance(env.limiter, TakingLimiter):
        assert env.limiter.took == ["reader"]
    assert env.limiter.keys == ["reader"]


async def test_no_token_is_unauthenticated_before_the_limiter_and_servicer(env: Env) -> None:
    for _ in range(2):  # the second call uses the cached wrapped handler: still guarded
        error = await _fails(env.stub.GetCheckpoint(svc.GetCheckpointRequest(checkpoint_id="x")))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert _reason(error) == "UNAUTHENTICATED"
    assert env.limiter.keys == []
    assert env.servicer.requests == []


async def test_a_missing_scope_is_permission_denied_before_the_limiter(env: Env) -> None:
    request = svc.DeleteCheckpointRequest(checkpoint_id="x")
    error = await _fails(env.stub.DeleteCheckpoint(request, metadata=READ))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "checkpoints:write" in (error.details() or "")
    assert env.limiter.keys == []


async def test_a_refusing_limiter_answers_resource_exhausted_without_the_servicer(env: Env) -> None:
    env.limiter.refuse = RateLimited("slow down", retry_after=1.5)
    error = await _fails(env.stub.GetCheckpoint(svc.GetCheckpointRequest(), metadata=READ))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.details() == "slow down"
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    retry = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    assert len(retry) == 1
    info = error_details_pb2.RetryInfo()
    retry[0].Unpack(info)
    assert (info.retry_delay.seconds, info.retry_delay.nanos) == (1, 500_000_000)
    assert env.servicer.requests == []


async def test_an_undecodable_request_is_invalid_argument_after_auth(env: Env) -> None:
    raw = env.channel.unary_unary(GET, None, None)  # no serializers: the bytes go as they are
    error = await _fails(raw(b"\xff", metadata=READ))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith("request message does not parse")
    assert env.servicer.requests == []
    error = await _fails(raw(b"\xff"))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_checkpoint_error_becomes_its_status_with_details(env: Env) -> None:
    async def missing(request: Any, context: Any) -> Any:
        raise NotFound("checkpoint 'x' not found")

    env.servicer.behavior = missing
    error = await _fails(env.stub.GetCheckpoint(svc.GetCheckpointRequest(), metadata=READ))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "checkpoint 'x' not found"
    assert _reason(error) == "CHECKPOINT_NOT_FOUND"


async def test_an_abort_by_the_servicer_passes_through_unchanged(env: Env) -> None:
    async def abort(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "servicer said no")

    env.servicer.behavior = abort
    error = await _fails(env.stub.GetCheckpoint(svc.GetCheckpointRequest(), metadata=READ))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == "servicer said no"


async def test_an_unexpected_error_is_internal_and_leaks_nothing(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    async def crash(request: Any, context: Any) -> Any:
        raise RuntimeError("secret-detail at /srv/db.sqlite")

    env.servicer.behavior = crash
    metadata = (*READ, ("x-request-id", "req-42"))
    with caplog.at_level(logging.ERROR, logger="server.guard"):
        error = await _fails(env.stub.GetCheckpoint(svc.GetCheckpointRequest(), metadata=metadata))
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details() == INTERNAL_MESSAGE
    trailing = repr(error.trailing_metadata()) + repr(error.initial_metadata())
    assert "secret-detail" not in trailing
    assert "Traceback" not in trailing
    logged = [r for r in caplog.records if "req-42" in r.getMessage()]
    assert len(logged) == 1
    assert GET in logged[0].getMessage()
    assert logged[0].exc_info is not None
    assert "secret-detail" in str(logged[0].exc_info[1])


async def test_health_and_reflection_need_no_token(env: Env) -> None:
    health_stub = health_pb2_grpc.HealthStub(env.channel)  # type: ignore[no-untyped-call]
    answer = await health_stub.Check(health_pb2.HealthCheckRequest(service=""))
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(env.channel)  # type: ignore[no-untyped-call]
    responses = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    names = [s.name async for r in responses for s in r.list_services_response.service]
    assert SERVICE in names
    assert env.limiter.keys == []


async def test_an_unknown_method_is_unimplemented(env: Env) -> None:
    raw = env.channel.unary_unary(f"/{SERVICE}/NoSuchMethod", None, None)
    error = await _fails(raw(b"", metadata=READ))
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    assert env.limiter.keys == []


async def _stream(
    env: Env, metadata: Any, checkpoint_id: str = "w"
) -> tuple[list[str], grpc.aio.AioRpcError]:
    call = env.stub.WatchCheckpoints(
        svc.WatchCheckpointsRequest(checkpoint_id=checkpoint_id), metadata=metadata
    )
    tokens: list[str] = []
    try:
        async for event in call:
            tokens.append(event.resume_token)
    except grpc.aio.AioRpcError as error:
        return tokens, error
    raise AssertionError("the stream ended without an error")


async def test_a_stream_is_guarded_once_and_its_errors_translated(env: Env) -> None:
    """A server stream takes one token from the bucket, and an error after its first messages
    still ends it with the error's own status and ErrorInfo."""
    tokens, error = await _stream(env, READ)
    assert tokens == ["t1", "t2"]
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "gone mid-stream"
    assert _reason(error) == "CHECKPOINT_NOT_FOUND"
    assert env.limiter.keys == ["reader"]


async def test_an_unauthenticated_stream_sends_nothing(env: Env) -> None:
    """No token: UNAUTHENTICATED before any message, without reaching limiter or servicer."""
    for _ in range(2):  # the cached wrapped stream handler is guarded too
        tokens, error = await _stream(env, ())
        assert (tokens, error.code()) == ([], grpc.StatusCode.UNAUTHENTICATED)
    assert env.limiter.keys == []
    assert env.servicer.requests == []


async def test_an_unexpected_error_in_a_stream_is_internal_with_a_fixed_message(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in a streaming handler answers INTERNAL "internal error"; the log has the trace."""
    with caplog.at_level(logging.ERROR, logger="server.guard"):
        tokens, error = await _stream(env, READ, "boom")
    assert (tokens, error.code(), error.details()) == (
        [],
        grpc.StatusCode.INTERNAL,
        INTERNAL_MESSAGE,
    )
    assert "a bug" in caplog.text
