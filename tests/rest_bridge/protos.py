"""Test-only protobuf types built in code with descriptor_pb2, each in its own descriptor pool.

`all_types_class()` is a message with a field of every scalar type (and repeated, map, enum,
nested, oneof and proto3-optional fields) for codec round trips. `service_schema()` builds a
Schema for a service whose methods carry the google.api.http rules a test gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

from rest_bridge.descriptor_set import Schema

F = descriptor_pb2.FieldDescriptorProto

# (field name, type) for every scalar type protobuf has.
SCALARS: tuple[tuple[str, int], ...] = (
    ("f_double", F.TYPE_DOUBLE),
    ("f_float", F.TYPE_FLOAT),
    ("f_int64", F.TYPE_INT64),
    ("f_uint64", F.TYPE_UINT64),
    ("f_int32", F.TYPE_INT32),
    ("f_fixed64", F.TYPE_FIXED64),
    ("f_fixed32", F.TYPE_FIXED32),
    ("f_bool", F.TYPE_BOOL),
    ("f_string", F.TYPE_STRING),
    ("f_bytes", F.TYPE_BYTES),
    ("f_uint32", F.TYPE_UINT32),
    ("f_sfixed32", F.TYPE_SFIXED32),
    ("f_sfixed64", F.TYPE_SFIXED64),
    ("f_sint32", F.TYPE_SINT32),
    ("f_sint64", F.TYPE_SINT64),
)


def _field(
    msg: descriptor_pb2.DescriptorProto,
    name: str,
    number: int,
    kind: int,
    *,
    type_name: str = "",
    repeated: bool = False,
    oneof_index: int | None = None,
    proto3_optional: bool = False,
) -> None:
    fld = msg.field.add(
        name=name,
        number=number,
        type=kind,
        label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL,
    )
    if type_name:
        fld.type_name = type_name
    if oneof_index is not None:
        fld.oneof_index = oneof_index
    if proto3_optional:
        fld.proto3_optional = True


def _all_types_file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="codectest/all_types.proto", package="codectest", syntax="proto3"
    )
    file.dependency.append("google/protobuf/timestamp.proto")
    color = file.enum_type.add(name="Color")
    for number, name in enumerate(["COLOR_UNSPECIFIED", "COLOR_RED", "COLOR_DARK_BLUE"]):
        color.value.add(name=name, number=number)
    inner = file.message_type.add(name="Inner")
    _field(inner, "n", 1, F.TYPE_INT32)
    msg = file.message_type.add(name="AllTypes")
    for number, (name, kind) in enumerate(SCALARS, start=1):
        _field(msg, name, number, kind)
    _field(msg, "color", 20, F.TYPE_ENUM, type_name=".codectest.Color")
    _field(msg, "inner", 21, F.TYPE_MESSAGE, type_name=".codectest.Inner")
    _field(msg, "r_int64", 22, F.TYPE_INT64, repeated=True)
    _field(msg, "r_color", 23, F.TYPE_ENUM, type_name=".codectest.Color", repeated=True)
    _field(msg, "r_inner", 24, F.TYPE_MESSAGE, type_name=".codectest.Inner", repeated=True)
    entry = msg.nested_type.add(name="MEntry")
    entry.options.map_entry = True
    _field(entry, "key", 1, F.TYPE_STRING)
    _field(entry, "value", 2, F.TYPE_UINT64)
    _field(msg, "m", 25, F.TYPE_MESSAGE, type_name=".codectest.AllTypes.MEntry", repeated=True)
    msg.oneof_decl.add(name="choice")
    _field(msg, "choice_a", 26, F.TYPE_STRING, oneof_index=0)
    _field(msg, "choice_b", 27, F.TYPE_INT32, oneof_index=0)
    _field(msg, "when", 28, F.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp")
    msg.oneof_decl.add(name="_maybe")
    _field(msg, "maybe", 29, F.TYPE_INT32, oneof_index=1, proto3_optional=True)
    _field(msg, "self", 30, F.TYPE_MESSAGE, type_name=".codectest.AllTypes")
    return file


def _pool_with(*files: descriptor_pb2.FileDescriptorProto) -> descriptor_pool.DescriptorPool:
    from google.protobuf import timestamp_pb2

    pool = descriptor_pool.DescriptorPool()
    for dependency in (timestamp_pb2.DESCRIPTOR,):
        proto = descriptor_pb2.FileDescriptorProto()
        dependency.CopyToProto(proto)
        pool.Add(proto)
    for file in files:
        pool.Add(file)
    return pool


def all_types_class() -> type[message.Message]:
    """The codectest.AllTypes message class (see the module docstring)."""
    pool = _pool_with(_all_types_file())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("codectest.AllTypes"))


@dataclass(frozen=True)
class Rpc:
    """One method of the test service and its google.api.http rule."""

    name: str
    rule: http_pb2.HttpRule | None
    """None: the method has no google.api.http option."""
    streaming: bool = False
    """Client streaming, which the bridge refuses."""


def rule(method: str, path: str, body: str = "", response_body: str = "") -> http_pb2.HttpRule:
    """An HttpRule for a standard method ("get", "post", ...) or a custom one."""
    out = http_pb2.HttpRule(body=body, response_body=response_body)
    if method in ("get", "put", "post", "delete", "patch"):
        setattr(out, method, path)
    else:
        out.custom.kind, out.custom.path = method, path
    return out


def service_schema(rpcs: Sequence[Rpc]) -> Schema:
    """A Schema exposing routetest.TestService with the given methods and rules.

    Every method takes routetest.Req (name, id, shelf.name, a repeated tag, a body message)
    and returns routetest.Resp.
    """
    file = descriptor_pb2.FileDescriptorProto(
        name="routetest/service.proto", package="routetest", syntax="proto3"
    )
    shelf = file.message_type.add(name="Shelf")
    _field(shelf, "name", 1, F.TYPE_STRING)
    req = file.message_type.add(name="Req")
    _field(req, "name", 1, F.TYPE_STRING)
    _field(req, "id", 2, F.TYPE_INT64)
    _field(req, "shelf", 3, F.TYPE_MESSAGE, type_name=".routetest.Shelf")
    _field(req, "tags", 4, F.TYPE_STRING, repeated=True)
    resp = file.message_type.add(name="Resp")
    _field(resp, "shelf", 1, F.TYPE_MESSAGE, type_name=".routetest.Shelf")
    service = file.service.add(name="TestService")
    for rpc in rpcs:
        method = service.method.add(
            name=rpc.name, input_type=".routetest.Req", output_type=".routetest.Resp"
        )
        if rpc.streaming:
            method.client_streaming = True
        if rpc.rule is not None:
            method.options.Extensions[annotations_pb2.http].CopyFrom(rpc.rule)  # type: ignore[index]
    pool = _pool_with(file)
    return Schema(pool=pool, services=(pool.FindServiceByName("routetest.TestService"),))
