"""An HTTP request (route, path values, query pairs, body bytes) into the gRPC request message.

Pure: no I/O. Follows google/api/http.proto and grpc-gateway: path variables fill their fields;
`body: "*"` fills the whole request from JSON (and then no query parameter is allowed);
`body: "field"` fills that field; every other field may come from the query string. An
unknown, repeated-but-singular or path-bound query parameter is INVALID_ARGUMENT. When a PATCH
body fills a message and the request has an unset `update_mask`, the mask is inferred from the
JSON keys present, as grpc-gateway does.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from typing import Any

from google.protobuf import field_mask_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from rest_bridge.codec import Codec, DecodeError
from rest_bridge.descriptors import (
    descriptor_of,
    find_field,
    is_map,
    is_well_known,
    message_of,
    resolve_path,
)
from rest_bridge.http_rule import percent_decode
from rest_bridge.routes import Route

_MASK = "google.protobuf.FieldMask"

_fields_of = functools.lru_cache(maxsize=4096)(resolve_path)
"""resolve_path per (request type, dotted name), once: a route's path variables and common
query names are the same on every request. Callers never change the list it returns."""


def parse_query(raw: bytes) -> list[tuple[str, str]]:
    """Query pairs, each name and value percent-decoded exactly once ("+" is a space).

    Raises:
        DecodeError: an invalid escape, bytes that are not UTF-8, or a pair with no name.
    """
    pairs: list[tuple[str, str]] = []
    if not raw:
        return pairs
    for part in raw.decode("latin-1").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        try:
            key = percent_decode(name.replace("+", " "))
            text = percent_decode(value.replace("+", " "))
        except ValueError as exc:
            raise DecodeError("query string is not valid percent-encoded UTF-8") from exc
        if not key:
            raise DecodeError("query string has a parameter with no name")
        pairs.append((key, text))
    return pairs


def parse_json(body: bytes) -> Any:
    """The JSON value of a request body.

    Stricter than json.loads in the ways a protobuf JSON parser is too: the text must decode
    without lone surrogate code points (json.loads lets bytes through with "surrogatepass"), an
    object may not repeat a key (the last one would silently win), numbers beyond Python's
    integer-conversion limit or beyond a double (1e400, which json.loads makes Infinity) are a
    bad request, not a crash or a silent change, and the bare NaN and Infinity json.loads
    allows are not JSON.

    Raises:
        DecodeError: not JSON in UTF-8 (or UTF-16/32, as RFC 4627 allowed), or a duplicate key.
    """
    try:
        text = body.decode(json.detect_encoding(body))
    except UnicodeDecodeError as exc:
        raise DecodeError(f"request body is not valid JSON: {_short(exc)}") from exc
    try:
        return json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_float=_finite,
            parse_constant=_not_json,
        )
    except RecursionError as exc:
        raise DecodeError("request body is nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, duplicate keys, the integer digit limit
        raise DecodeError(f"request body is not valid JSON: {_short(exc)}") from exc


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's pairs as a dict, refusing a repeated key as protobuf's JSON parser does."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {json.dumps(key)}")
            seen.add(key)
    return out


def _finite(literal: str) -> float:
    number = float(literal)
    if math.isinf(number):
        raise ValueError(f"number {literal[:40]} is beyond the range of a double")
    return number


def _not_json(literal: str) -> Any:
    raise ValueError(f'{literal} is not JSON (write it as a string: "{literal}")')


def to_request(
    route: Route,
    codec: Codec,
    path_params: dict[str, str],
    query: Sequence[tuple[str, str]],
    body: bytes,
) -> Message:
    """Build the request message for a matched route.

    Raises:
        DecodeError: the body, a path value or a query parameter does not fit the request.
    """
    request = route.request_class()
    body_value: Any = None
    if route.body:
        body_value = parse_json(body) if body.strip() else None
        if body_value is not None:
            if route.body == "*":
                codec.decode(body_value, request)
            else:
                codec.decode({route.body: body_value}, request)
    for field_path, text in path_params.items():
        _set(codec, request, field_path, [text], from_path=True)
    if query and route.body == "*":
        raise DecodeError(
            f"unknown query parameter {query[0][0]!r}: this method takes all of its fields from "
            "the request body",
            query[0][0],
        )
    for name, (given, values) in _grouped(route, query).items():
        _check_query_name(route, name, given, path_params)
        _set(codec, request, name, values, from_path=False)
    _infer_update_mask(route, request, body_value, query)
    return request


def _grouped(route: Route, query: Sequence[tuple[str, str]]) -> dict[str, tuple[str, list[str]]]:
    """Proto-name path -> (the name as given, values); JSON names are accepted too.

    Raises:
        DecodeError: a parameter names no field of the request.
    """
    grouped: dict[str, tuple[str, list[str]]] = {}
    for name, value in query:
        chain = _fields_of(route.rpc.input_type, name)
        if chain is None:
            raise DecodeError(f"unknown query parameter {name!r}", name)
        canonical = ".".join(f.name for f in chain)
        grouped.setdefault(canonical, (name, []))[1].append(value)
    return grouped


def _check_query_name(route: Route, name: str, given: str, path_params: dict[str, str]) -> None:
    """Refuse a parameter (name: its proto path) for a field the body or the path sets."""
    body_fld = route.body_field
    if body_fld is not None and name.split(".", 1)[0] == body_fld.name:
        raise DecodeError(f"query parameter {given!r} is set by the request body", given)
    for bound in path_params:
        if name == bound or name.startswith(bound + ".") or bound.startswith(name + "."):
            raise DecodeError(f"query parameter {given!r} is set by the path", given)


def _set(codec: Codec, request: Message, dotted: str, values: list[str], from_path: bool) -> None:
    chain = _fields_of(descriptor_of(request), dotted)
    if chain is None:  # routes and _grouped resolved the path already; kept for safety
        raise DecodeError(f"unknown field {dotted!r}", dotted)
    where = dotted
    if any(parent.is_repeated for parent in chain[:-1]):
        raise DecodeError(
            f"query parameter {where!r} goes through a repeated field, which the query string "
            "cannot set",
            where,
        )
    target: Any = request
    for parent in chain[:-1]:
        target = getattr(target, parent.name)
    fld = chain[-1]
    if is_map(fld):
        raise DecodeError(
            f"query parameter {where!r} is a map, which the query string cannot set", where
        )
    if fld.is_repeated:
        container = getattr(target, fld.name)
        for value in values:
            if fld.type == FieldDescriptor.TYPE_MESSAGE:
                _well_known_from_text(codec, container.add(), fld, value, where)
            else:
                container.append(codec.scalar_from_text(fld, value, where))
        return
    if len(values) > 1:
        raise DecodeError(f"query parameter {where!r} is given more than once", where)
    if fld.type == FieldDescriptor.TYPE_MESSAGE:
        _well_known_from_text(codec, getattr(target, fld.name), fld, values[0], where)
        return
    kind = "path value" if from_path else "query parameter"
    try:
        setattr(target, fld.name, codec.scalar_from_text(fld, values[0], where))
    except DecodeError as exc:
        raise DecodeError(f"{kind} {exc}", where) from exc


def _well_known_from_text(
    codec: Codec, msg: Any, fld: FieldDescriptor, text: str, where: str
) -> None:
    desc = message_of(fld)
    if not is_well_known(desc):
        raise DecodeError(
            f"query parameter {where!r} is a message; name one of its fields, e.g. {where}.<field>",
            where,
        )
    if (
        "value" in desc.fields_by_name
        and desc.full_name.endswith("Value")
        and len(desc.fields) == 1
    ):
        msg.value = codec.scalar_from_text(desc.fields_by_name["value"], text, where)
        return
    codec.decode(text, msg, where)


def _infer_update_mask(
    route: Route, request: Message, body_value: Any, query: Sequence[tuple[str, str]]
) -> None:
    if route.http_method != "PATCH":
        return
    body_fld = route.body_field
    mask_fld = route.rpc.input_type.fields_by_name.get("update_mask")
    if (
        body_fld is None
        or body_fld.type != FieldDescriptor.TYPE_MESSAGE
        or mask_fld is None
        or mask_fld.type != FieldDescriptor.TYPE_MESSAGE
        or message_of(mask_fld).full_name != _MASK
        or request.HasField("update_mask")
        or not isinstance(body_value, dict)
    ):
        return
    mask: field_mask_pb2.FieldMask = getattr(request, "update_mask")  # noqa: B009
    mask.SetInParent()
    mask.paths.extend(_json_paths(body_value, message_of(body_fld)))


def _json_paths(value: dict[str, Any], desc: Descriptor, prefix: str = "") -> list[str]:
    paths: list[str] = []
    for key, item in value.items():
        fld = find_field(desc, key)
        if fld is None:
            continue
        path = f"{prefix}{fld.name}"
        nested = (
            fld.type == FieldDescriptor.TYPE_MESSAGE
            and not fld.is_repeated
            and not is_well_known(message_of(fld))
            and isinstance(item, dict)
            and item
        )
        paths.extend(_json_paths(item, message_of(fld), path + ".") if nested else [path])
    return paths


def _short(exc: Exception) -> str:
    return str(exc).split("\n", 1)[0][:200]
