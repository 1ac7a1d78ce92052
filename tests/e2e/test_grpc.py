"""The gRPC side of the running server: same answers as REST, health, reflection, `buf curl`."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterable
from typing import Any

import grpc
import httpx
import pytest
from checkpoint.v1 import checkpoint_pb2 as pb
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_status import rpc_status

from tests.e2e import EXAMPLE_ID, SPACED_ID, GrpcServer, Tokens, bearer, executable

SERVICE = "checkpoint.v1.CheckpointService"
# The contract's status table: gRPC code -> HTTP status.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.INVALID_ARGUMENT: 422,
}


@pytest.fixture(scope="module")
def stub(grpc_channel: grpc.Channel) -> svc_grpc.CheckpointServiceStub:
    """A generated CheckpointService stub on the session's channel."""
    return svc_grpc.CheckpointServiceStub(grpc_channel)


def token_of(kind: str, tokens: Tokens) -> str | None:
    return {"none": None, "read": tokens.read, "write": tokens.write, "both": tokens.both}.get(
        kind, "ckpt_notARealToken"
    )


def metadata_for(token: str | None) -> tuple[tuple[str, str], ...]:
    return () if token is None else (("authorization", f"Bearer {token}"),)


def grpc_code(call: Any) -> grpc.StatusCode:
    """The status code of a unary call, OK when it returns."""
    try:
        call()
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()
        return code
    return grpc.StatusCode.OK


@pytest.mark.parametrize(
    ("kind", "checkpoint_id", "segment", "code"),
    [
        pytest.param("read", "example", "example", grpc.StatusCode.OK, id="ok"),
        pytest.param("read", "my box", "my%20box", grpc.StatusCode.OK, id="ok-space"),
        pytest.param(
            "read", EXAMPLE_ID.upper(), EXAMPLE_ID.upper(), grpc.StatusCode.OK, id="ok-upper-uuid"
        ),
        pytest.param("none", "example", "example", grpc.StatusCode.UNAUTHENTICATED, id="no-token"),
        pytest.param(
            "unknown", "example", "example", grpc.StatusCode.UNAUTHENTICATED, id="unknown-token"
        ),
        pytest.param(
            "write", "example", "example", grpc.StatusCode.PERMISSION_DENIED, id="write-only"
        ),
        pytest.param("read", "nope", "nope", grpc.StatusCode.NOT_FOUND, id="not-found"),
        pytest.param(
            "read", "x" * 129, "x" * 129, grpc.StatusCode.INVALID_ARGUMENT, id="over-long"
        ),
        pytest.param("read", "a/b", "a%2Fb", grpc.StatusCode.INVALID_ARGUMENT, id="slash"),
    ],
)
def test_grpc_and_rest_give_the_same_answer(
    stub: svc_grpc.CheckpointServiceStub,
    http: httpx.Client,
    e2e_tokens: Tokens,
    *,
    kind: str,
    checkpoint_id: str,
    segment: str,
    code: grpc.StatusCode,
) -> None:
    """The server alone decides: a gRPC status and its REST status follow the contract's table."""
    token = token_of(kind, e2e_tokens)
    request = svc.GetCheckpointRequest(checkpoint_id=checkpoint_id)
    got = grpc_code(lambda: stub.GetCheckpoint(request, metadata=metadata_for(token), timeout=10))
    assert got is code
    response = http.get(f"/v1/checkpoints/{segment}", headers=bearer(token) if token else {})
    assert response.status_code == HTTP_STATUS[code]


def test_empty_checkpoint_id_is_invalid_argument_with_bad_request(
    stub: svc_grpc.CheckpointServiceStub, e2e_tokens: Tokens
) -> None:
    """An empty checkpoint_id is INVALID_ARGUMENT with a google.rpc.BadRequest naming the field."""
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetCheckpoint(
            svc.GetCheckpointRequest(checkpoint_id=""),
            metadata=metadata_for(e2e_tokens.read),
            timeout=10,
        )
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(raised.value)  # type: ignore[arg-type]
    assert status is not None
    fields = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    assert fields == ["checkpoint_id"]


def test_get_over_grpc_returns_the_imported_checkpoint(
    stub: svc_grpc.CheckpointServiceStub, e2e_tokens: Tokens
) -> None:
    """GetCheckpoint over gRPC returns the imported values, with the enum as a number."""
    reply = stub.GetCheckpoint(
        svc.GetCheckpointRequest(checkpoint_id="example"),
        metadata=metadata_for(e2e_tokens.read),
        timeout=10,
    )
    got = reply.checkpoint
    assert (got.id, got.display_name, got.state) == (
        EXAMPLE_ID,
        "example",
        pb.CHECKPOINT_STATE_READY,
    )
    assert got.resources.limits.memory_mib == 2048
    assert (got.resources.requests.memory_mib, got.resources.requests.vcpus) == (1024, 2)


def test_created_over_grpc_is_readable_over_rest(
    stub: svc_grpc.CheckpointServiceStub, http: httpx.Client, e2e_tokens: Tokens
) -> None:
    """A checkpoint made by CreateCheckpoint is served by the bridge, and only to readers."""
    name = f"e2e created {uuid.uuid4().hex[:8]}"
    checkpoint = pb.Checkpoint(display_name=name)
    checkpoint.resources.limits.memory_mib = 4096
    checkpoint.resources.requests.memory_mib = 2048
    checkpoint.resources.requests.vcpus = 4
    request = svc.CreateCheckpointRequest(checkpoint=checkpoint)
    assert (
        grpc_code(
            lambda: stub.CreateCheckpoint(
                request, metadata=metadata_for(e2e_tokens.read), timeout=10
            )
        )
        is grpc.StatusCode.PERMISSION_DENIED
    )
    created = stub.CreateCheckpoint(request, metadata=metadata_for(e2e_tokens.write), timeout=10)
    assert created.checkpoint.state == pb.CHECKPOINT_STATE_CREATING
    response = http.get(
        f"/v1/checkpoints/{name.replace(' ', '%20')}", headers=bearer(e2e_tokens.read)
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["id"] == created.checkpoint.id
    assert data["state"] == "creating"
    assert data["resources"] == {
        "limits": {"memory_mib": 4096},
        "requests": {"memory_mib": 2048, "vcpus": 4},
    }
    by_id = http.get(
        f"/v1/checkpoints/{created.checkpoint.id.upper()}", headers=bearer(e2e_tokens.both)
    )
    assert by_id.json()["data"] == data
    forbidden = http.get(
        f"/v1/checkpoints/{created.checkpoint.id}", headers=bearer(e2e_tokens.write)
    )
    assert forbidden.status_code == 403


@pytest.mark.parametrize("service", ["", SERVICE])
def test_health_check_needs_no_token(grpc_channel: grpc.Channel, service: str) -> None:
    """grpc.health.v1 Check answers SERVING, for the server and the service, with no token."""
    health = health_pb2_grpc.HealthStub(grpc_channel)  # type: ignore[no-untyped-call]
    reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def reflect(
    channel: grpc.Channel, service: str, requests: Iterable[reflection_pb2.ServerReflectionRequest]
) -> list[reflection_pb2.ServerReflectionResponse]:
    """Send reflection requests on one stream (v1 and v1alpha share the wire format)."""
    call = channel.stream_stream(
        f"/{service}/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    return list(call(iter(list(requests)), timeout=10))


def pool_from_reflection(
    channel: grpc.Channel, reflection: str, symbol: str
) -> descriptor_pool.DescriptorPool:
    """A fresh descriptor pool holding symbol's file and every file it imports, by reflection."""
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    ask = [reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol)]
    for _ in range(10):
        if not ask:
            break
        for reply in reflect(channel, reflection, ask):
            assert reply.WhichOneof("message_response") == "file_descriptor_response", reply
            for raw in reply.file_descriptor_response.file_descriptor_proto:
                proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
                files[proto.name] = proto
        missing = {dep for f in files.values() for dep in f.dependency} - set(files)
        ask = [
            reflection_pb2.ServerReflectionRequest(file_by_filename=name)
            for name in sorted(missing)
        ]
    assert not ask, f"reflection never sent {[r.file_by_filename for r in ask]}"
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(name: str) -> None:
        if name in added:
            return
        for dep in files[name].dependency:
            add(dep)
        pool.Add(files[name])
        added.add(name)

    for name in sorted(files):
        add(name)
    return pool


@pytest.mark.parametrize(
    "reflection",
    ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"],
)
def test_get_checkpoint_through_reflection_alone(
    grpc_server: GrpcServer, e2e_tokens: Tokens, reflection: str
) -> None:
    """With only what reflection serves (no generated stubs), GetCheckpoint can be called."""
    with grpc.insecure_channel(grpc_server.address) as channel:
        (listing,) = reflect(
            channel, reflection, [reflection_pb2.ServerReflectionRequest(list_services="")]
        )
        services = {s.name for s in listing.list_services_response.service}
        assert {SERVICE, "grpc.health.v1.Health", reflection} <= services
        pool = pool_from_reflection(channel, reflection, SERVICE)
        method = pool.FindServiceByName(SERVICE).methods_by_name["GetCheckpoint"]
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        assert method.input_type.file.pool is pool
        request = json_format.ParseDict({"checkpoint_id": "my box"}, request_class())
        call = channel.unary_unary(
            f"/{SERVICE}/{method.name}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        reply = call(request, metadata=metadata_for(e2e_tokens.read), timeout=10)
    assert type(reply) is response_class
    as_dict = json_format.MessageToDict(reply, preserving_proto_field_name=True)
    checkpoint = as_dict["checkpoint"]
    assert checkpoint["id"] == SPACED_ID
    assert checkpoint["display_name"] == "my box"
    assert checkpoint["state"] == "CHECKPOINT_STATE_CREATING"
    assert checkpoint["resources"] == {
        "limits": {"memory_mib": "512"},
        "requests": {"memory_mib": "256", "vcpus": 1},
    }


@pytest.fixture(scope="module")
def buf_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment for `buf`, with its cache in a temporary directory."""
    cache = tmp_path_factory.mktemp("buf-cache")
    return {**os.environ, "BUF_CACHE_DIR": str(cache), "HOME": str(cache)}


def buf_curl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run `buf curl` over plaintext HTTP/2 gRPC."""
    return subprocess.run(
        [executable("buf"), "curl", "--protocol", "grpc", "--http2-prior-knowledge", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def test_buf_curl_gets_a_checkpoint(
    grpc_server: GrpcServer, e2e_tokens: Tokens, buf_env: dict[str, str]
) -> None:
    """`buf curl` with a token and a display name answers the checkpoint as protojson."""
    result = buf_curl(
        buf_env,
        "-H",
        f"Authorization: Bearer {e2e_tokens.read}",
        "-d",
        '{"checkpoint_id": "example"}',
        f"http://{grpc_server.address}/{SERVICE}/GetCheckpoint",
    )
    assert result.returncode == 0, result.stderr
    checkpoint = json.loads(result.stdout)["checkpoint"]
    assert checkpoint["id"] == EXAMPLE_ID
    assert checkpoint["displayName"] == "example"
    assert checkpoint["state"] == "CHECKPOINT_STATE_READY"
    assert checkpoint["resources"]["limits"]["memoryMib"] == "2048"


def test_buf_curl_without_a_token_is_unauthenticated(
    grpc_server: GrpcServer, buf_env: dict[str, str]
) -> None:
    """`buf curl` without a token fails with the unauthenticated code."""
    result = buf_curl(
        buf_env,
        "-d",
        '{"checkpoint_id": "example"}',
        f"http://{grpc_server.address}/{SERVICE}/GetCheckpoint",
    )
    assert result.returncode != 0
    assert "unauthenticated" in result.stdout + result.stderr


@pytest.mark.parametrize("protocol", ["grpc-v1", "grpc-v1alpha"])
def test_buf_curl_lists_methods_by_reflection(
    grpc_server: GrpcServer, buf_env: dict[str, str], protocol: str
) -> None:
    """`buf curl --list-methods` (either reflection protocol) lists every RPC, with no token."""
    result = buf_curl(
        buf_env, "--reflect-protocol", protocol, "--list-methods", f"http://{grpc_server.address}"
    )
    assert result.returncode == 0, result.stderr
    methods = set(result.stdout.split())
    expected = {
        f"{SERVICE}/{m}"
        for m in (
            "GetCheckpoint",
            "ListCheckpoints",
            "CreateCheckpoint",
            "UpdateCheckpoint",
            "DeleteCheckpoint",
        )
    }
    assert expected | {"grpc.health.v1.Health/Check"} <= methods
