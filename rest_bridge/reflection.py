"""The upstream's schema, fetched from its server reflection service instead of a file.

One ServerReflectionInfo stream: list_services, then file_containing_symbol for each service,
then file_by_filename for every import not yet seen, until the set is closed. grpc.reflection.v1
is asked first and v1alpha when that fails other than as unreachable; both have the same messages
and field numbers, so grpcio-reflection's v1alpha classes serve as the v1 messages too (the
bridge may not borrow server/reflection.py, which derives v1 the same way).

Reflection carries no SourceCodeInfo, so a schema fetched this way has no comments: its
OpenAPI operations and fields have no descriptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, message
from grpc_reflection.v1alpha import reflection_pb2 as rpb

from rest_bridge.descriptor_set import Schema, SchemaError, schema_from_files

METHODS = (
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
)
"""Tried in this order; the next one unless the first failed as unreachable."""

UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
"""Failures that asking v1alpha instead would only repeat."""

SKIPPED_PREFIXES = ("grpc.reflection.", "grpc.health.")
"""Services that are never transcoded, so their files are not fetched when no name is given."""

DEFAULT_TIMEOUT = 10.0


class ReflectionError(SchemaError):
    """The upstream's reflection service could not be asked, or answered an error."""


class _CallFailed(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code, self.details = code, details


async def fetch_schema(
    channel: grpc.aio.Channel, service_names: Sequence[str], rpc_timeout: float = DEFAULT_TIMEOUT
) -> Schema:
    """The named services (with none, every service with a google.api.http rule) of the
    server behind channel, with every file they need.

    Raises:
        ReflectionError: reflection is unreachable, unimplemented, or answered an error.
        SchemaError: the files it returned do not build or lack a named service.
    """
    failures: list[str] = []
    for method in METHODS:
        try:
            files = await _fetch_files(channel, method, service_names, rpc_timeout)
        except _CallFailed as exc:
            # A server without v1 answers UNIMPLEMENTED, or, when that answer overtakes the
            # first write, grpcio reports INTERNAL; an unreachable one fails both alike, and
            # grpcio's own text (addresses, socket errors) is not repeated to clients.
            if exc.code in UNREACHABLE:
                failures.append(f"the upstream is unreachable ({exc.code.name})")
                break
            failures.append(f"{method.split('/')[1]}: {exc}")
            continue
        return schema_from_files(files, service_names, "the upstream's reflection")
    raise ReflectionError(f"reflection of the upstream failed: {'; '.join(failures)}")


async def _fetch_files(
    channel: grpc.aio.Channel, method: str, service_names: Sequence[str], rpc_timeout: float
) -> descriptor_pb2.FileDescriptorSet:
    open_stream: Any = channel.stream_stream(
        method,
        request_serializer=rpb.ServerReflectionRequest.SerializeToString,
        response_deserializer=rpb.ServerReflectionResponse.FromString,
    )
    call = open_stream(timeout=rpc_timeout)
    try:
        names = list(service_names)
        if not names:
            listed = await _ask(call, rpb.ServerReflectionRequest(list_services=""))
            names = [
                s.name
                for s in listed.list_services_response.service
                if not s.name.startswith(SKIPPED_PREFIXES)
            ]
        found: dict[str, descriptor_pb2.FileDescriptorProto] = {}
        for name in names:
            reply = await _ask(call, rpb.ServerReflectionRequest(file_containing_symbol=name))
            # A listed service the server cannot describe is left out; a named one is an error.
            if service_names or not reply.HasField("error_response"):
                _collect(found, reply, f"service {name!r}")
        while missing := sorted({d for f in found.values() for d in f.dependency} - set(found)):
            for filename in missing:
                reply = await _ask(call, rpb.ServerReflectionRequest(file_by_filename=filename))
                _collect(found, reply, f"file {filename!r}")
                if filename not in found:
                    raise ReflectionError(f"the upstream's reflection did not return {filename}")
        # End the stream as the protocol does and wait for its status, so that no event of
        # this call is still on its way when the caller moves on (or its event loop closes).
        await call.done_writing()
        await call.code()
    except grpc.RpcError as exc:
        raise _CallFailed(await call.code(), await call.details() or "") from exc
    finally:
        call.cancel()
    return descriptor_pb2.FileDescriptorSet(file=_imports_first(found))


async def _ask(call: Any, request: rpb.ServerReflectionRequest) -> rpb.ServerReflectionResponse:
    await call.write(request)
    reply = await call.read()
    if not isinstance(reply, rpb.ServerReflectionResponse):  # grpc.aio.EOF
        raise ReflectionError("the upstream's reflection stream ended early")
    return reply


def _collect(
    found: dict[str, descriptor_pb2.FileDescriptorProto],
    reply: rpb.ServerReflectionResponse,
    what: str,
) -> None:
    if reply.HasField("error_response"):
        error = reply.error_response
        raise ReflectionError(
            f"the upstream's reflection has no {what}: {error.error_message or error.error_code}"
        )
    for raw in reply.file_descriptor_response.file_descriptor_proto:
        try:
            file_proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
        except message.DecodeError as exc:
            raise ReflectionError(f"the upstream's reflection sent a bad file: {exc}") from exc
        found.setdefault(file_proto.name, file_proto)


def _imports_first(
    found: dict[str, descriptor_pb2.FileDescriptorProto],
) -> list[descriptor_pb2.FileDescriptorProto]:
    """Every file after the files it imports (a descriptor pool is built in that order)."""
    ordered: list[descriptor_pb2.FileDescriptorProto] = []
    placed: set[str] = set()

    def place(name: str) -> None:
        if name in placed:
            return
        placed.add(name)
        for dependency in found[name].dependency:
            place(dependency)
        ordered.append(found[name])

    for name in sorted(found):
        place(name)
    return ordered
