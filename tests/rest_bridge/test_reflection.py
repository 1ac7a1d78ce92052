"""rest_bridge.reflection against real grpc.aio servers on 127.0.0.1:0: v1, the v1alpha
fallback, a server that sends each file alone (as Go's does), and the failures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from checkpoint.v1 import checkpoint_service_pb2  # noqa: F401  (puts the service in the default pool)
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha import reflection_pb2 as rpb

from rest_bridge.descriptor_set import SchemaError, schema_from_files
from rest_bridge.reflection import ReflectionError, fetch_schema
from rest_bridge.routes import build_routes
from server.reflection import enable_reflection
from tests.rest_bridge.upstream import dead_address

pytestmark = pytest.mark.anyio

SERVICE = "checkpoint.v1.CheckpointService"
CONTRACT_ROUTES = {
    ("GET", "/v1/checkpoints/{checkpoint_id}"),
    ("GET", "/v1/checkpoints"),
    ("POST", "/v1/checkpoints"),
    ("PATCH", "/v1/checkpoints/{checkpoint_id}"),
    ("DELETE", "/v1/checkpoints/{checkpoint_id}"),
    ("GET", "/v1/checkpoints:watch"),  # issue 14
}
Setup = Callable[[grpc.aio.Server], None]


@asynccontextmanager
async def serving(setup: Setup) -> AsyncIterator[grpc.aio.Channel]:
    """A grpc.aio server set up by setup, and a channel to it."""
    server = grpc.aio.server()
    setup(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await server.stop(0)


def v1_and_v1alpha(server: grpc.aio.Server) -> None:
    enable_reflection(server, [SERVICE])


def v1alpha_only(server: grpc.aio.Server) -> None:
    reflection.enable_server_reflection([SERVICE, reflection.SERVICE_NAME], server)


def one_file_per_answer(server: grpc.aio.Server) -> None:
    """v1 only, answering each question with the one file asked for, never its imports."""
    pool = descriptor_pool.Default()

    def file_response(found: Any) -> rpb.ServerReflectionResponse:
        proto = descriptor_pb2.FileDescriptorProto()
        found.CopyToProto(proto)
        raw = [proto.SerializeToString()]
        return rpb.ServerReflectionResponse(
            file_descriptor_response=rpb.FileDescriptorResponse(file_descriptor_proto=raw)
        )

    async def info(requests: Any, context: Any) -> AsyncIterator[rpb.ServerReflectionResponse]:
        async for request in requests:
            kind = request.WhichOneof("message_request")
            if kind == "list_services":
                yield rpb.ServerReflectionResponse(
                    list_services_response=rpb.ListServiceResponse(
                        service=[rpb.ServiceResponse(name=SERVICE)]
                    )
                )
            elif kind == "file_containing_symbol":
                yield file_response(pool.FindFileContainingSymbol(request.file_containing_symbol))
            else:
                yield file_response(pool.FindFileByName(request.file_by_filename))

    handler = grpc.stream_stream_rpc_method_handler(
        info,
        request_deserializer=rpb.ServerReflectionRequest.FromString,
        response_serializer=rpb.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "grpc.reflection.v1.ServerReflection", {"ServerReflectionInfo": handler}
            ),
        )
    )


@pytest.mark.parametrize(
    "setup",
    [
        pytest.param(v1_and_v1alpha, id="v1"),
        pytest.param(v1alpha_only, id="v1alpha-fallback"),
        pytest.param(one_file_per_answer, id="imports-asked-by-name"),
    ],
)
@pytest.mark.parametrize("names", [(), (SERVICE,)], ids=["every-service-with-rules", "named"])
async def test_reflection_gives_the_contract_routes(setup: Setup, names: tuple[str, ...]) -> None:
    """Each server's reflection yields CheckpointService (not reflection itself) and the
    contract's five routes, with every imported file."""
    async with serving(setup) as channel:
        schema = await fetch_schema(channel, names)
    assert [s.full_name for s in schema.services] == [SERVICE]
    table = build_routes(schema)
    assert {(r.http_method, r.template.source) for r in table.routes} == CONTRACT_ROUTES
    assert schema.pool.FindFileByName("google/api/http.proto")
    assert schema.comments == {}
    assert schema.fingerprint


async def test_same_upstream_gives_the_same_fingerprint() -> None:
    """Two fetches of an unchanged upstream compare equal, so a refetch swaps nothing."""
    async with serving(v1_and_v1alpha) as channel:
        first = await fetch_schema(channel, ())
        second = await fetch_schema(channel, ())
    assert first.fingerprint == second.fingerprint


async def test_unknown_named_service_is_an_error_naming_it() -> None:
    """--service naming a service the upstream does not have fails with its name."""
    async with serving(v1_and_v1alpha) as channel:
        with pytest.raises(ReflectionError, match=r"no service 'nope\.v1\.Nothing'"):
            await fetch_schema(channel, ("nope.v1.Nothing",))


async def test_server_without_reflection_reports_both_attempts() -> None:
    """A server with neither v1 nor v1alpha: the error names both, UNIMPLEMENTED."""
    async with serving(lambda server: None) as channel:
        with pytest.raises(ReflectionError) as caught:
            await fetch_schema(channel, ())
    message = str(caught.value)
    assert "grpc.reflection.v1.ServerReflection" in message
    assert "grpc.reflection.v1alpha.ServerReflection" in message
    assert "UNIMPLEMENTED" in message


async def test_unreachable_upstream_is_unavailable_without_a_second_attempt() -> None:
    """Nothing listening: one UNAVAILABLE, v1alpha not asked (it would fail the same way), and
    no address or socket error in the text (it reaches /readyz)."""
    with dead_address() as address:
        async with grpc.aio.insecure_channel(address) as channel:
            with pytest.raises(ReflectionError, match="UNAVAILABLE") as caught:
                await fetch_schema(channel, (), rpc_timeout=2)
    assert str(caught.value) == (
        "reflection of the upstream failed: the upstream is unreachable (UNAVAILABLE)"
    )


def test_files_that_do_not_build_are_a_schema_error() -> None:
    """A file whose import is missing (a reflection answer cut short) fails with the origin."""
    orphan = descriptor_pb2.FileDescriptorProto(
        name="orphan.proto", package="orphan", dependency=["missing.proto"]
    )
    with pytest.raises(SchemaError, match="the upstream's reflection does not build"):
        schema_from_files(
            descriptor_pb2.FileDescriptorSet(file=[orphan]), (), "the upstream's reflection"
        )
