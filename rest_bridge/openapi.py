"""The OpenAPI 3.1 document, generated from the same routes and descriptors the bridge serves.

Descriptions come from the proto comments. Every operation documents the 200 `{"data": ...}`
envelope and the error envelopes, which come from rest_bridge.status: one response per status
STATUS_DESCRIPTIONS describes, "default" for the rest, each with the headers ApiError.render
adds for its codes (ERROR_HEADERS). A response schema's `required` lists the fields the bridge
always emits; request bodies use `.Input` variants with nothing required. Output-only fields
(google.api.field_behavior OUTPUT_ONLY) are readOnly.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.api import field_behavior_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from rest_bridge import idempotency
from rest_bridge.descriptor_set import Schema
from rest_bridge.descriptors import (
    enum_of,
    enum_short_name,
    is_map,
    is_well_known,
    message_of,
    resolve_field,
)
from rest_bridge.envelope import JSON_TYPE
from rest_bridge.openapi_http import add_head_operations, add_http_semantics
from rest_bridge.openapi_streams import stream_parameters, stream_response
from rest_bridge.routes import Route, RouteTable
from rest_bridge.status import REQUEST_ID, STATUS_TABLE, DocumentedStatus, documented_statuses

JSON = JSON_TYPE
ERROR_SCHEMA = "Error"

_UINT32 = {"type": "integer", "format": "uint32", "minimum": 0, "maximum": 2**32 - 1}
_UINT64 = {"type": "integer", "format": "uint64", "minimum": 0, "maximum": 2**64 - 1}
_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: _UINT32,
    FieldDescriptor.TYPE_FIXED32: _UINT32,
    FieldDescriptor.TYPE_INT64: {"type": "integer", "format": "int64"},
    FieldDescriptor.TYPE_SINT64: {"type": "integer", "format": "int64"},
    FieldDescriptor.TYPE_SFIXED64: {"type": "integer", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: _UINT64,
    FieldDescriptor.TYPE_FIXED64: _UINT64,
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}
"""Copied on use (dict(...)), so the shared rows are never mutated through the document."""

_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": ["string", "null"], "format": "date-time"},
    "google.protobuf.Duration": {"type": ["string", "null"], "pattern": r"^-?[0-9]+(\.[0-9]+)?s$"},
    "google.protobuf.FieldMask": {"type": ["string", "null"]},
    "google.protobuf.Empty": {"type": ["object", "null"]},
    "google.protobuf.Struct": {"type": ["object", "null"]},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": ["array", "null"]},
    "google.protobuf.Any": {"type": ["object", "null"]},
    "google.protobuf.StringValue": {"type": ["string", "null"]},
    "google.protobuf.BytesValue": {"type": ["string", "null"], "format": "byte"},
    "google.protobuf.BoolValue": {"type": ["boolean", "null"]},
    "google.protobuf.Int32Value": {"type": ["integer", "null"], "format": "int32"},
    "google.protobuf.UInt32Value": {"type": ["integer", "null"], "format": "uint32", "minimum": 0},
    "google.protobuf.Int64Value": {"type": ["integer", "null"], "format": "int64"},
    "google.protobuf.UInt64Value": {"type": ["integer", "null"], "format": "uint64", "minimum": 0},
    "google.protobuf.FloatValue": {"type": ["number", "null"], "format": "float"},
    "google.protobuf.DoubleValue": {"type": ["number", "null"], "format": "double"},
}


class _Builder:
    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.components: dict[str, Any] = {}

    def comment(self, full_name: str) -> str:
        return self.schema.comments.get(full_name, "")

    def message_ref(self, desc: Descriptor, output: bool = True) -> dict[str, Any]:
        """A reference to the schema of a message: as the bridge writes it (output), or as a
        client sends it (input: nothing required, since every field has a default)."""
        if is_well_known(desc):
            return dict(_WELL_KNOWN.get(desc.full_name, {}))
        name = desc.full_name if output else f"{desc.full_name}.Input"
        if name not in self.components:
            self.components[name] = {}  # placeholder first: recursive types refer to themselves
            self.components[name] = self._message_schema(desc, output)
        return {"$ref": f"#/components/schemas/{name}"}

    def _message_schema(self, desc: Descriptor, output: bool) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for fld in desc.fields:
            prop = self.field_schema(fld, output)
            description = self.comment(fld.full_name)
            if "$ref" in prop:
                prop = {"allOf": [prop]}
            if description:
                prop["description"] = description
            if _output_only(fld):
                prop["readOnly"] = True
            properties[fld.name] = prop
            if output and _always_emitted(fld):
                required.append(fld.name)
        out: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            out["required"] = required
        description = self.comment(desc.full_name)
        if description:
            out["description"] = description
        return out

    def field_schema(self, fld: FieldDescriptor, output: bool = True) -> dict[str, Any]:
        if is_map(fld):
            value = message_of(fld).fields_by_name["value"]
            return {"type": "object", "additionalProperties": self.single(value, output)}
        single = self.single(fld, output)
        if fld.is_repeated:
            return {"type": "array", "items": single}
        return single

    def single(self, fld: FieldDescriptor, output: bool = True) -> dict[str, Any]:
        if fld.type == FieldDescriptor.TYPE_MESSAGE:
            return self.message_ref(message_of(fld), output)
        if fld.type == FieldDescriptor.TYPE_ENUM:
            enum = enum_of(fld)
            names = [
                n for v in enum.values if v.number != 0 and (n := enum_short_name(enum, v.number))
            ]
            return {"type": "string", "enum": names}
        return dict(_SCALARS[fld.type])


def _output_only(fld: FieldDescriptor) -> bool:
    options = descriptor_pb2.FieldOptions()
    options.ParseFromString(fld.GetOptions().SerializeToString())
    extension: Any = field_behavior_pb2.field_behavior
    behaviors: list[int] = list(options.Extensions[extension])
    return field_behavior_pb2.OUTPUT_ONLY in behaviors


def _always_emitted(fld: FieldDescriptor) -> bool:
    """Mirrors codec.Codec: fields without presence and singular plain messages are always there."""
    if fld.is_repeated:
        return True
    if fld.type == FieldDescriptor.TYPE_MESSAGE:
        return fld.containing_oneof is None and not is_well_known(message_of(fld))
    return not fld.has_presence


def build_openapi(
    schema: Schema, table: RouteTable, title: str = "Checkpoint API"
) -> dict[str, Any]:
    """The OpenAPI document for every route of the table, plus the bridge's own endpoints."""
    builder = _Builder(schema)
    paths: dict[str, Any] = {}
    for route in table.routes:
        path = _openapi_path(route)
        paths.setdefault(path, {})[route.http_method.lower()] = _operation(builder, route)
    paths["/healthz"] = {"get": _probe("The bridge process is up.", "HealthzGet")}
    paths["/readyz"] = {
        "get": _probe("The gRPC server answers its health check with SERVING.", "ReadyzGet")
    }
    add_head_operations(paths)
    builder.components[ERROR_SCHEMA] = _error_schema()
    services = " ".join(builder.comment(s.full_name) for s in schema.services).strip()
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "v1", "description": services},
        "paths": paths,
        "components": {
            "schemas": builder.components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def _openapi_path(route: Route) -> str:
    parts = []
    for segment in route.template.segments:
        parts.append(f"{{{segment.field_path}}}" if not isinstance(segment, str) else segment)
    verb = f":{route.template.verb}" if route.template.verb else ""
    return "/" + "/".join(parts) + verb


def _operation(builder: _Builder, route: Route) -> dict[str, Any]:
    method = route.rpc
    parameters: list[dict[str, Any]] = []
    for variable in route.template.variables:
        fld = resolve_field(method.input_type, variable.field_path)
        if fld is None:  # build_routes refuses such a route; this keeps the types honest
            raise ValueError(f"{method.full_name}: no request field {variable.field_path}")
        parameters.append(
            {
                "name": variable.field_path,
                "in": "path",
                "required": True,
                "description": builder.comment(fld.full_name),
                "schema": builder.single(fld),
            }
        )
    if route.body != "*":
        bound = {v.field_path for v in route.template.variables} | {route.body}
        parameters += _query_parameters(builder, method.input_type, "", bound, frozenset())
    response_desc = method.output_type
    if route.response_body:
        response_fld = response_desc.fields_by_name[route.response_body]
        data = builder.field_schema(response_fld)
    else:
        data = builder.message_ref(response_desc)
    operation: dict[str, Any] = {
        "operationId": f"{method.containing_service.name}_{method.name}",
        "summary": builder.comment(method.full_name).split(". ")[0],
        "description": builder.comment(method.full_name),
        "tags": [method.containing_service.name],
        "parameters": parameters,
        "responses": {
            "200": {
                "description": "Response envelope.",
                "headers": {REQUEST_ID.name: _header(REQUEST_ID.description)},
                "content": {
                    JSON: {
                        "schema": {
                            "type": "object",
                            "required": ["data"],
                            "properties": {"data": data},
                        }
                    }
                },
            },
            **error_responses(),
        },
    }
    if method.server_streaming:
        error_ref = f"#/components/schemas/{ERROR_SCHEMA}"
        operation["responses"]["200"] = stream_response(route, data, error_ref)
        parameters += stream_parameters(route)
    if route.body:
        if route.body == "*":
            body_schema = builder.message_ref(method.input_type, output=False)
        else:
            body_fld = method.input_type.fields_by_name[route.body]
            body_schema = builder.field_schema(body_fld, output=False)
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": body_schema}}}
    add_http_semantics(operation, route)
    idempotency.document(route, operation)
    return operation


def _query_parameters(
    builder: _Builder, desc: Descriptor, prefix: str, bound: set[str], seen: frozenset[str]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for fld in desc.fields:
        name = prefix + fld.name
        if name in bound or fld.full_name in seen:
            continue
        if is_map(fld):
            continue
        if fld.type == FieldDescriptor.TYPE_MESSAGE and not is_well_known(message_of(fld)):
            if not fld.is_repeated:
                nested = message_of(fld)
                out += _query_parameters(builder, nested, name + ".", bound, seen | {fld.full_name})
            continue
        schema = builder.single(fld)
        if fld.is_repeated:
            schema = {"type": "array", "items": schema}
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": False,
            "schema": schema,
        }
        description = builder.comment(fld.full_name)
        if description:
            parameter["description"] = description
        if fld.is_repeated:
            parameter["explode"] = True
        out.append(parameter)
    return out


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


def error_responses() -> dict[str, Any]:
    """The error responses of an operation, as status.documented_statuses() lists them."""
    return {entry.key: _error_response(entry) for entry in documented_statuses()}


def _error_response(entry: DocumentedStatus) -> dict[str, Any]:
    return {
        "description": entry.description,
        "headers": {h.name: _header(h.description) for h in entry.headers},
        "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}},
    }


def _error_schema() -> dict[str, Any]:
    codes = sorted({row.code for row in STATUS_TABLE.values() if row.code != "ok"})
    return {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "additionalProperties": False,
                "properties": {
                    "code": {
                        "type": "string",
                        "enum": codes,
                        "description": "Lowercase gRPC status code name.",
                    },
                    "message": {
                        "type": "string",
                        "description": "For people; never a stack trace.",
                    },
                    "details": {
                        "type": "array",
                        "description": "Field violations (google.rpc.BadRequest).",
                        "items": {
                            "type": "object",
                            "required": ["field", "description"],
                            "properties": {
                                "field": {"type": "string"},
                                "description": {"type": "string"},
                            },
                        },
                    },
                },
            }
        },
    }


def _probe(description: str, operation_id: str) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "description": description,
        "security": [],
        "responses": {
            "200": {
                "description": description,
                "content": {
                    JSON: {
                        "schema": {
                            "type": "object",
                            "required": ["data"],
                            "properties": {"data": {"type": "object"}},
                        }
                    }
                },
            },
            **_unavailable_response(),
        },
    }


def _unavailable_response() -> dict[str, Any]:
    """The response of a probe whose upstream is not serving: the one UNAVAILABLE is part of."""
    entry = next(e for e in documented_statuses() if grpc.StatusCode.UNAVAILABLE in e.codes)
    return {entry.key: _error_response(entry)}
