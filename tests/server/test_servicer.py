"""The gRPC server in-process on port 0 with a SQLite store: every RPC, auth, health, reflection.

grpcio-testing drives only synchronous servicers, so these tests start the real grpc.aio server
(server.app.create_server) and talk to it over a real channel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from checkpoint.v1 import checkpoint_pb2 as pb
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from server.app import RunningServer, create_server
from server.config import ServerConfig
from server.store import Store, open_store
from server.tokens import TokenRecord, hash_token

pytestmark = pytest.mark.anyio

READ_TOKEN = "ckpt_reader"
WRITE_TOKEN = "ckpt_writer"
ALL_TOKEN = "ckpt_all"
SERVICE = "checkpoint.v1.CheckpointService"

Metadata = tuple[tuple[str, str], ...]


def _bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


READ = _bearer(READ_TOKEN)
WRITE = _bearer(WRITE_TOKEN)
ALL = _bearer(ALL_TOKEN)


def _tokens() -> dict[str, TokenRecord]:
    records = [
        TokenRecord("reader", hash_token(READ_TOKEN), frozenset({"checkpoints:read"})),
        TokenRecord("writer", hash_token(WRITE_TOKEN), frozenset({"checkpoints:write"})),
        TokenRecord(
            "all", hash_token(ALL_TOKEN), frozenset({"checkpoints:read", "checkpoints:write"})
        ),
    ]
    return {r.sha256: r for r in records}


@dataclass
class Env:
    running: RunningServer
    channel: grpc.aio.Channel
    stub: svc_grpc.CheckpointServiceAsyncStub

    async def create(self, name: str, limit: int = 2048) -> pb.Checkpoint:
        request = svc.CreateCheckpointRequest(
            checkpoint=pb.Checkpoint(
                display_name=name,
                resources=pb.Resources(
                    limits=pb.ResourceLimits(memory_mib=limit),
                    requests=pb.ResourceRequests(memory_mib=1024, vcpus=2),
                ),
            )
        )
        response = await self.stub.CreateCheckpoint(request, metadata=WRITE)
        return response.checkpoint

    async def set_state(self, checkpoint_id: str, state: pb.CheckpointState.ValueType) -> None:
        await self.stub.UpdateCheckpoint(
            svc.UpdateCheckpointRequest(
                checkpoint_id=checkpoint_id,
                checkpoint=pb.Checkpoint(state=state),
                update_mask=field_mask_pb2.FieldMask(paths=["state"]),
            ),
            metadata=WRITE,
        )


async def _start(tmp_path: Path, **config: float) -> AsyncIterator[Env]:
    store: Store = open_store(f"sqlite:///{tmp_path}/db.sqlite")
    running = await create_server(
        ServerConfig(listen="127.0.0.1:0", **config),  # type: ignore[arg-type]
        store,
        _tokens(),
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield Env(running, channel, svc_grpc.CheckpointServiceStub(channel))
    finally:
        await channel.close(None)
        await running.server.stop(None)
        await store.close()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    """A started server with rate limiting off, and a stub on a channel to it."""
    async for started in _start(tmp_path, rate_limit=0):
        yield started


async def _fails(call: object) -> grpc.aio.AioRpcError:
    """The error an awaited call ends with (the test fails if it succeeds)."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


def _bad_request_fields(error: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    fields: list[str] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    return fields


# -- Get --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "how",
    [
        pytest.param("id", id="by-id"),
        pytest.param("upper-id", id="by-uppercase-id"),
        pytest.param("name", id="by-name"),
    ],
)
async def test_get(env: Env, how: str) -> None:
    """A checkpoint is found by its id in any letter case, or by its display name."""
    created = await env.create("my box")
    key = {"id": created.id, "upper-id": created.id.upper(), "name": "my box"}[how]
    response = await env.stub.GetCheckpoint(
        svc.GetCheckpointRequest(checkpoint_id=key), metadata=READ
    )
    assert response.checkpoint == created
    assert response.checkpoint.id == created.id.lower()


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("x", id="name"),
        pytest.param("0b7e4c1a-3f2d-4e5a-9b8c-7d6e5f4a3b2c", id="uuid"),
    ],
)
async def test_get_not_found(env: Env, key: str) -> None:
    """An unknown id or name is NOT_FOUND with the message checkpoint "x" not found."""
    error = await _fails(
        env.stub.GetCheckpoint(svc.GetCheckpointRequest(checkpoint_id=key), metadata=READ)
    )
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert error.details() == f'checkpoint "{key}" not found'


async def test_get_uppercase_uuid_not_found_reports_lowercase(env: Env) -> None:
    """A UUID lookup is canonicalised, so the NOT_FOUND message shows it lowercased."""
    key = "0B7E4C1A-3F2D-4E5A-9B8C-7D6E5F4A3B2C"
    error = await _fails(
        env.stub.GetCheckpoint(svc.GetCheckpointRequest(checkpoint_id=key), metadata=READ)
    )
    assert error.details() == f'checkpoint "{key.lower()}" not found'


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param("x" * 129, id="over-long"),
        pytest.param("a/b", id="slash"),
        pytest.param(" a", id="leading-space"),
    ],
)
async def test_get_invalid_id(env: Env, key: str) -> None:
    """An invalid checkpoint_id is INVALID_ARGUMENT with a BadRequest naming checkpoint_id."""
    error = await _fails(
        env.stub.GetCheckpoint(svc.GetCheckpointRequest(checkpoint_id=key), metadata=READ)
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert _bad_request_fields(error) == ["checkpoint_id"]


# -- Create -----------------------------------------------------------------------------------


async def test_create(env: Env) -> None:
    """Create assigns a lowercase UUID, state creating, timestamps and etag v1."""
    created = await env.create("box")
    assert created.id == created.id.lower()
    assert len(created.id) == 36
    assert created.display_name == "box"
    assert created.state == pb.CHECKPOINT_STATE_CREATING
    assert created.resources.limits.memory_mib == 2048
    assert created.resources.requests.memory_mib == 1024
    assert created.resources.requests.vcpus == 2
    assert created.HasField("create_time")
    assert created.create_time == created.update_time
    assert created.etag == "v1"


async def test_create_duplicate_name(env: Env) -> None:
    """A display name already in use is ALREADY_EXISTS."""
    await env.create("box")
    error = await _fails(env.create("box"))
    assert error.code() is grpc.StatusCode.ALREADY_EXISTS


async def test_create_invalid(env: Env) -> None:
    """A checkpoint breaking the rules is INVALID_ARGUMENT listing every bad field."""
    request = svc.CreateCheckpointRequest(checkpoint=pb.Checkpoint(display_name=""))
    error = await _fails(env.stub.CreateCheckpoint(request, metadata=WRITE))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert _bad_request_fields(error) == [
        "checkpoint.display_name",
        "checkpoint.resources.requests.memory_mib",
        "checkpoint.resources.requests.vcpus",
    ]


# -- List -------------------------------------------------------------------------------------


async def test_list_pages_without_repeats_or_skips(env: Env) -> None:
    """Paging with next_page_token returns every checkpoint once, in creation order."""
    created = [(await env.create(f"box-{i}")).id for i in range(7)]
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        response = await env.stub.ListCheckpoints(
            svc.ListCheckpointsRequest(page_size=3, page_token=token), metadata=READ
        )
        pages += 1
        assert len(response.checkpoints) <= 3
        seen += [c.id for c in response.checkpoints]
        token = response.next_page_token
        if not token:
            break
        assert pages < 10
    assert seen == created
    assert pages == 3


async def test_list_exact_multiple_has_no_empty_last_page(env: Env) -> None:
    """When the last page is full, it carries no next_page_token."""
    for i in range(4):
        await env.create(f"box-{i}")
    first = await env.stub.ListCheckpoints(svc.ListCheckpointsRequest(page_size=2), metadata=READ)
    second = await env.stub.ListCheckpoints(
        svc.ListCheckpointsRequest(page_size=2, page_token=first.next_page_token), metadata=READ
    )
    assert len(first.checkpoints) == len(second.checkpoints) == 2
    assert second.next_page_token == ""


async def test_list_empty_store(env: Env) -> None:
    """An empty store lists no checkpoints and no next page."""
    response = await env.stub.ListCheckpoints(svc.ListCheckpointsRequest(), metadata=READ)
    assert list(response.checkpoints) == []
    assert response.next_page_token == ""


async def test_list_state_filter(env: Env) -> None:
    """A state filter returns only the checkpoints in that state, across pages."""
    ids = [(await env.create(f"box-{i}")).id for i in range(5)]
    for checkpoint_id in ids[1::2]:
        await env.set_state(checkpoint_id, pb.CHECKPOINT_STATE_READY)
    first = await env.stub.ListCheckpoints(
        svc.ListCheckpointsRequest(state=pb.CHECKPOINT_STATE_READY, page_size=1), metadata=READ
    )
    second = await env.stub.ListCheckpoints(
        svc.ListCheckpointsRequest(
            state=pb.CHECKPOINT_STATE_READY, page_size=1, page_token=first.next_page_token
        ),
        metadata=READ,
    )
    assert [c.id for c in [*first.checkpoints, *second.checkpoints]] == ids[1::2]
    assert all(c.state == pb.CHECKPOINT_STATE_READY for c in second.checkpoints)
    assert second.next_page_token == ""
    creating = await env.stub.ListCheckpoints(
        svc.ListCheckpointsRequest(state=pb.CHECKPOINT_STATE_CREATING), metadata=READ
    )
    assert [c.id for c in creating.checkpoints] == ids[0::2]


async def test_list_token_from_other_filter(env: Env) -> None:
    """A token issued under one filter is INVALID_ARGUMENT under another."""
    for i in range(3):
        await env.create(f"box-{i}")
    first = await env.stub.ListCheckpoints(svc.ListCheckpointsRequest(page_size=1), metadata=READ)
    error = await _fails(
        env.stub.ListCheckpoints(
            svc.ListCheckpointsRequest(
                page_size=1,
                page_token=first.next_page_token,
                state=pb.CHECKPOINT_STATE_CREATING,
            ),
            metadata=READ,
        )
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert _bad_request_fields(error) == ["page_token"]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        pytest.param(svc.ListCheckpointsRequest(page_token="forged"), "page_token", id="forged"),
        pytest.param(svc.ListCheckpointsRequest(page_size=-1), "page_size", id="negative-size"),
    ],
)
async def test_list_invalid(env: Env, request_: svc.ListCheckpointsRequest, field: str) -> None:
    """A forged page token or a negative page size is INVALID_ARGUMENT naming the field."""
    error = await _fails(env.stub.ListCheckpoints(request_, metadata=READ))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert _bad_request_fields(error) == [field]


# -- Update -----------------------------------------------------------------------------------


async def test_update_moves_state_forward(env: Env) -> None:
    """creating -> ready -> deleting is allowed, bumping the etag each time."""
    created = await env.create("box")
    for state, etag in [(pb.CHECKPOINT_STATE_READY, "v2"), (pb.CHECKPOINT_STATE_DELETING, "v3")]:
        response = await env.stub.UpdateCheckpoint(
            svc.UpdateCheckpointRequest(checkpoint_id="box", checkpoint=pb.Checkpoint(state=state)),
            metadata=WRITE,
        )
        assert response.checkpoint.state == state
        assert response.checkpoint.etag == etag
        assert response.checkpoint.id == created.id


async def test_update_refuses_backward_move(env: Env) -> None:
    """A move the state machine refuses is FAILED_PRECONDITION and changes nothing."""
    created = await env.create("box")
    await env.set_state(created.id, pb.CHECKPOINT_STATE_READY)
    error = await _fails(
        env.stub.UpdateCheckpoint(
            svc.UpdateCheckpointRequest(
                checkpoint_id=created.id,
                checkpoint=pb.Checkpoint(state=pb.CHECKPOINT_STATE_CREATING),
            ),
            metadata=WRITE,
        )
    )
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    got = await env.stub.GetCheckpoint(
        svc.GetCheckpointRequest(checkpoint_id=created.id), metadata=READ
    )
    assert got.checkpoint.state == pb.CHECKPOINT_STATE_READY
    assert got.checkpoint.etag == "v2"


async def test_update_etag(env: Env) -> None:
    """The current etag lets an update through; a stale one is ABORTED."""
    created = await env.create("box")
    ok = await env.stub.UpdateCheckpoint(
        svc.UpdateCheckpointRequest(
            checkpoint_id=created.id, checkpoint=pb.Checkpoint(display_name="b2", etag="v1")
        ),
        metadata=WRITE,
    )
    assert ok.checkpoint.display_name == "b2"
    error = await _fails(
        env.stub.UpdateCheckpoint(
            svc.UpdateCheckpointRequest(
                checkpoint_id=created.id, checkpoint=pb.Checkpoint(display_name="b3", etag="v1")
            ),
            metadata=WRITE,
        )
    )
    assert error.code() is grpc.StatusCode.ABORTED


async def test_update_rename_to_taken_name(env: Env) -> None:
    """Renaming to a display name another checkpoint holds is ALREADY_EXISTS."""
    await env.create("a")
    await env.create("b")
    error = await _fails(
        env.stub.UpdateCheckpoint(
            svc.UpdateCheckpointRequest(
                checkpoint_id="b", checkpoint=pb.Checkpoint(display_name="a")
            ),
            metadata=WRITE,
        )
    )
    assert error.code() is grpc.StatusCode.ALREADY_EXISTS


async def test_update_with_mask_changes_only_masked(env: Env) -> None:
    """Only the fields in update_mask change, even if others are set in the message."""
    await env.create("box")
    response = await env.stub.UpdateCheckpoint(
        svc.UpdateCheckpointRequest(
            checkpoint_id="box",
            checkpoint=pb.Checkpoint(
                display_name="ignored",
                resources=pb.Resources(requests=pb.ResourceRequests(vcpus=8)),
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["resources.requests.vcpus"]),
        ),
        metadata=WRITE,
    )
    assert response.checkpoint.display_name == "box"
    assert response.checkpoint.resources.requests.vcpus == 8
    assert response.checkpoint.resources.limits.memory_mib == 2048


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        pytest.param(
            svc.UpdateCheckpointRequest(
                checkpoint_id="missing", checkpoint=pb.Checkpoint(display_name="n")
            ),
            grpc.StatusCode.NOT_FOUND,
            id="not-found",
        ),
        pytest.param(
            svc.UpdateCheckpointRequest(checkpoint_id="box"),
            grpc.StatusCode.INVALID_ARGUMENT,
            id="nothing-to-update",
        ),
        pytest.param(
            svc.UpdateCheckpointRequest(
                checkpoint_id="box",
                checkpoint=pb.Checkpoint(display_name="n"),
                update_mask=field_mask_pb2.FieldMask(paths=["id"]),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            id="output-only-path",
        ),
        pytest.param(
            svc.UpdateCheckpointRequest(
                checkpoint_id="box",
                checkpoint=pb.Checkpoint(
                    resources=pb.Resources(limits=pb.ResourceLimits(memory_mib=1))
                ),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            id="limit-below-request",
        ),
    ],
)
async def test_update_refused(
    env: Env, request_: svc.UpdateCheckpointRequest, code: grpc.StatusCode
) -> None:
    """An update of a missing checkpoint or with a bad mask or value is refused with its code."""
    await env.create("box")
    error = await _fails(env.stub.UpdateCheckpoint(request_, metadata=WRITE))
    assert error.code() is code


# -- Delete -----------------------------------------------------------------------------------


async def test_delete(env: Env) -> None:
    """Delete answers with the deleted checkpoint; afterwards it is NOT_FOUND."""
    created = await env.create("box")
    deleted = await env.stub.DeleteCheckpoint(
        svc.DeleteCheckpointRequest(checkpoint_id="box"), metadata=WRITE
    )
    assert deleted.checkpoint == created
    error = await _fails(
        env.stub.GetCheckpoint(svc.GetCheckpointRequest(checkpoint_id=created.id), metadata=READ)
    )
    assert error.code() is grpc.StatusCode.NOT_FOUND
    again = await _fails(
        env.stub.DeleteCheckpoint(svc.DeleteCheckpointRequest(checkpoint_id="box"), metadata=WRITE)
    )
    assert again.code() is grpc.StatusCode.NOT_FOUND


async def test_delete_stale_etag(env: Env) -> None:
    """A delete with a stale etag is ABORTED and the checkpoint stays."""
    created = await env.create("box")
    error = await _fails(
        env.stub.DeleteCheckpoint(
            svc.DeleteCheckpointRequest(checkpoint_id=created.id, etag="v9"), metadata=WRITE
        )
    )
    assert error.code() is grpc.StatusCode.ABORTED
    got = await env.stub.GetCheckpoint(
        svc.GetCheckpointRequest(checkpoint_id=created.id), metadata=READ
    )
    assert got.checkpoint.id == created.id


async def test_deleted_name_can_be_reused(env: Env) -> None:
    """After a delete, the display name is free again."""
    first = await env.create("box")
    await env.stub.DeleteCheckpoint(svc.DeleteCheckpointRequest(checkpoint_id="box"), metadata=ALL)
    second = await env.create("box")
    assert second.id != first.id


# -- auth -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        pytest.param((), grpc.StatusCode.UNAUTHENTICATED, id="no-token"),
        pytest.param(
            (("authorization", "Token x"),), grpc.StatusCode.UNAUTHENTICATED, id="malformed"
        ),
        pytest.param(_bearer("ckpt_unknown"), grpc.StatusCode.UNAUTHENTICATED, id="unknown"),
        pytest.param(WRITE, grpc.StatusCode.PERMISSION_DENIED, id="write-token-reads"),
    ],
)
async def test_auth_on_get(env: Env, metadata: Metadata, code: grpc.StatusCode) -> None:
    """Get needs a known token with checkpoints:read."""
    error = await _fails(
        env.stub.GetCheckpoint(svc.GetCheckpointRequest(checkpoint_id="x"), metadata=metadata)
    )
    assert error.code() is code


async def test_read_token_cannot_write(env: Env) -> None:
    """A read-only token is PERMISSION_DENIED on Create and nothing is created."""
    request = svc.CreateCheckpointRequest(checkpoint=pb.Checkpoint(display_name="box"))
    error = await _fails(env.stub.CreateCheckpoint(request, metadata=READ))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert READ_TOKEN not in (error.details() or "")
    listed = await env.stub.ListCheckpoints(svc.ListCheckpointsRequest(), metadata=READ)
    assert list(listed.checkpoints) == []


async def test_auth_before_validation(env: Env) -> None:
    """Without a token, even an invalid request is UNAUTHENTICATED, not INVALID_ARGUMENT."""
    error = await _fails(env.stub.GetCheckpoint(svc.GetCheckpointRequest(checkpoint_id="")))
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_undecodable_request_is_invalid_argument(env: Env) -> None:
    """Bytes that do not parse as the request message are INVALID_ARGUMENT, not INTERNAL."""
    raw = env.channel.unary_unary(
        f"/{SERVICE}/GetCheckpoint",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    error = await _fails(raw(b"\xff\xff\xff", metadata=READ))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_rate_limit(tmp_path: Path) -> None:
    """Past the burst, a token is RESOURCE_EXHAUSTED with a RetryInfo; others are not limited."""
    async for env in _start(tmp_path, rate_limit=0.001, rate_burst=2):
        for _ in range(2):
            await env.stub.ListCheckpoints(svc.ListCheckpointsRequest(), metadata=READ)
        error = await _fails(env.stub.ListCheckpoints(svc.ListCheckpointsRequest(), metadata=READ))
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
        assert status is not None
        infos = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
        assert len(infos) == 1
        info = error_details_pb2.RetryInfo()
        infos[0].Unpack(info)
        assert info.retry_delay.seconds > 0
        await env.stub.ListCheckpoints(svc.ListCheckpointsRequest(), metadata=ALL)


# -- health and reflection --------------------------------------------------------------------


@pytest.mark.parametrize(
    "service", [pytest.param("", id="server"), pytest.param(SERVICE, id="checkpoint-service")]
)
async def test_health_needs_no_token(env: Env, service: str) -> None:
    """Health checks answer SERVING without any token."""
    stub = health_pb2_grpc.HealthStub(env.channel)  # type: ignore[no-untyped-call]
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def _list_services(channel: grpc.aio.Channel, method: str) -> set[str]:
    call = channel.stream_stream(
        method,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    stream = call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names: set[str] = set()
    async for response in stream:
        names |= {s.name for s in response.list_services_response.service}
    return names


@pytest.mark.parametrize(
    "method",
    [
        pytest.param("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", id="v1"),
        pytest.param("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", id="v1a"),
    ],
)
async def test_reflection_needs_no_token(env: Env, method: str) -> None:
    """Both reflection versions list the checkpoint, health and reflection services, tokenless."""
    names = await _list_services(env.channel, method)
    assert {
        SERVICE,
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= names


async def test_reflection_describes_the_service(env: Env) -> None:
    """Reflection serves the file that defines CheckpointService (grpcurl describe works)."""
    stub = reflection_pb2_grpc.ServerReflectionStub(env.channel)  # type: ignore[no-untyped-call]
    stream = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE)])
    )
    blobs: list[bytes] = []
    async for response in stream:
        assert not response.HasField("error_response")
        blobs += list(response.file_descriptor_response.file_descriptor_proto)
    assert blobs
    assert any(b"CheckpointService" in blob for blob in blobs)
