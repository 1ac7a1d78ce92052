"""OTLP trace export requests written as protobuf wire bytes, for the OTLP/HTTP exporter.

The SDK's encoder (opentelemetry.exporter.otlp.proto.common.trace_encoder) builds a protobuf
object for every span, attribute and value and then serializes them: ~30 µs of CPU a span here,
in the batch processor's thread but under the same GIL as the requests. Most of what a span
holds repeats from one request to the next (its name, kind, most attribute pairs, its resource
and scope), so `encode_spans` writes each span's fields directly and keeps the bytes of repeated
pieces. The request parses to the same ExportTraceServiceRequest as the SDK's (a test compares
the two on varied spans), grouped the same way: by resource, then by instrumentation scope.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry.trace import SpanContext, SpanKind

if TYPE_CHECKING:  # only rest_bridge.otlp_exporter imports this module, and the SDK with it
    from opentelemetry.sdk.trace import ReadableSpan

_logger = logging.getLogger(__name__)
_K = TypeVar("_K", bound=Hashable)
KINDS = {
    SpanKind.INTERNAL: b"\x30\x01",
    SpanKind.SERVER: b"\x30\x02",
    SpanKind.CLIENT: b"\x30\x03",
    SpanKind.PRODUCER: b"\x30\x04",
    SpanKind.CONSUMER: b"\x30\x05",
}
"""The API's span kind -> the Span.kind field (6) with the proto enum's value."""
HAS_IS_REMOTE, IS_REMOTE = 0x100, 0x200
"""SpanFlags: the flags field says whether the parent is remote, and that it says so."""
CACHE_LIMIT = 4096
"""Entries each cache keeps before it starts again: repeated pieces are few, unique ones are
not worth keeping (a request id, a message)."""
_INT64 = (-(1 << 63), 1 << 63)
_U64 = (1 << 64) - 1
_FIXED64 = struct.Struct("<BQ")
_DOUBLE = struct.Struct("<Bd")
_FIXED32 = struct.Struct("<HI")
_SMALL = [bytes((n,)) for n in range(0x80)]


def varint(number: int) -> bytes:
    """number (0 <= number < 2**64) as a protobuf varint."""
    if number < 0x80:
        return _SMALL[number]
    out = bytearray()
    while number >= 0x80:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _field(tag: bytes, body: bytes) -> bytes:
    """A length-delimited field: its tag, the body's length, the body."""
    return tag + varint(len(body)) + body


def _cached(cache: dict[_K, bytes], key: _K, make: Callable[[_K], bytes]) -> bytes:
    found = cache.get(key)
    if found is None:
        if len(cache) >= CACHE_LIMIT:
            cache.clear()
        found = cache[key] = make(key)
    return found


def any_value(value: Any) -> bytes:
    """The body of the AnyValue the SDK's encoder makes of value (its type checks, in its order).

    Raises:
        ValueError: an int outside int64, as protobuf raises.
        TypeError: a value of no AnyValue type.
    """
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, int):
        if not _INT64[0] <= value < _INT64[1]:
            raise ValueError(f"int attribute value out of int64 range: {value}")
        return b"\x18" + varint(value & _U64)
    if isinstance(value, float):
        return _DOUBLE.pack(0x21, value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join(_field(b"\x0a", any_value(v)) for v in value))
    if isinstance(value, Mapping):
        pairs = (_field(b"\x0a", key_value(str(k), v)) for k, v in value.items())
        return _field(b"\x32", b"".join(pairs))
    raise TypeError(f"Invalid type {type(value)} of value {value}")


def key_value(key: str, value: Any) -> bytes:
    """The body of a KeyValue; its value is always present, if empty (as the SDK sets it)."""
    name = _field(b"\x0a", key.encode()) if key else b""
    return name + _field(b"\x12", any_value(value))


_PAIRS: dict[tuple[str, type, Any], bytes] = {}
"""(key, type of value, value) -> the KeyValue's length and body, for str and int values (the
type: True == 1)."""


def _pair(key: tuple[str, type, Any]) -> bytes:
    body = key_value(key[0], key[2])
    return varint(len(body)) + body


def _items(given: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    """given's pairs; from a copy when it has one (a span's attributes are a read-only view of
    the SDK's BoundedAttributes, whose copy is a plain dict: a third of the cost to walk)."""
    try:
        copied: Mapping[str, Any] = given.copy()  # type: ignore[attr-defined]  # checked here
    except AttributeError:
        return given.items()
    return copied.items()


def attributes(tag: bytes, given: Mapping[str, Any] | None) -> list[bytes]:
    """The repeated KeyValue field tag of attributes; a pair protobuf would refuse is left out
    and logged, as the SDK's encoder does."""
    parts: list[bytes] = []
    if not given:
        return parts
    for key, value in _items(given):
        try:
            if isinstance(value, (str, int)):  # not float: -0.0 == 0.0, and NaN != NaN
                pair = (key, value.__class__, value)
                parts += (tag, _PAIRS.get(pair) or _cached(_PAIRS, pair, _pair))
            else:
                body = key_value(key, value)
                parts += (tag, varint(len(body)), body)
        except Exception as error:  # as the SDK's encoder: one bad pair is skipped
            _logger.exception("Failed to encode key %s: %s", key, error)
    return parts


def _flags(parent: SpanContext | None) -> int:
    return HAS_IS_REMOTE | IS_REMOTE if parent and parent.is_remote else HAS_IS_REMOTE


_NAMES: dict[str, bytes] = {}
_FLAG_FIELDS = {flags: _FIXED32.pack(0x0185, flags) for flags in (HAS_IS_REMOTE, 0x300)}
"""Span.flags (field 16, fixed32: the two-byte tag 0x85 0x01) for both values it takes."""


def _string(tag: bytes, text: str | None) -> bytes:
    """A string field, left out when empty (proto3)."""
    return _field(tag, text.encode()) if text else b""


def _name(name: str) -> bytes:
    return _string(b"\x2a", name)


def _times(tags: tuple[int, int], start: int | None, end: int | None) -> bytes:
    """Two fixed64 fields, each left out when unset or zero (proto3)."""
    out = _FIXED64.pack(tags[0], start) if start else b""
    return (out + _FIXED64.pack(tags[1], end)) if end else out


def _count(tag: bytes, count: int) -> bytes:
    return tag + varint(count) if count else b""


def _trace_state(tag: bytes, context: SpanContext) -> bytes:
    state = context.trace_state
    if not state:
        return b""
    return _field(tag, ",".join(f"{key}={value}" for key, value in state.items()).encode())


def _events(readable: ReadableSpan) -> list[bytes]:
    parts = []
    for event in readable.events:
        body = [_times((0x09, 0), event.timestamp, None), _string(b"\x12", event.name)]
        body += attributes(b"\x1a", event.attributes)
        body.append(_count(b"\x20", event.dropped_attributes))
        parts.append(_field(b"\x5a", b"".join(body)))
    parts.append(_count(b"\x60", readable.dropped_events))
    return parts


def _links(readable: ReadableSpan) -> list[bytes]:
    parts = []
    for link in readable.links:
        body = [
            _ids(link.context),
            *attributes(b"\x22", link.attributes),
            _count(b"\x28", link.dropped_attributes),
            struct.pack("<BI", 0x35, _flags(link.context)),
        ]
        parts.append(_field(b"\x6a", b"".join(body)))
    parts.append(_count(b"\x70", readable.dropped_links))
    return parts


_IDS = struct.Struct(">2sQQ2sQ")
"""trace_id (field 1, 16 bytes) and span_id (field 2, 8 bytes), big-endian as the SDK writes."""
_PARENT = struct.Struct(">2sQ")
_BOTH_TIMES = struct.Struct("<BQBQ")
_STATUSES: dict[tuple[Any, str | None], bytes] = {}
_NONE = object()


def _ids(context: SpanContext) -> bytes:
    trace_id = context.trace_id
    return _IDS.pack(b"\x0a\x10", trace_id >> 64, trace_id & _U64, b"\x12\x08", context.span_id)


def _status_of(key: tuple[Any, str | None]) -> bytes:
    """Span.status (field 15) of (status code, description): always present, as the SDK's
    encoder sets it."""
    message = _string(b"\x12", key[1])
    code = key[0].value
    return _field(b"\x7a", message + (b"\x18" + varint(code) if code else b""))


def span(readable: ReadableSpan) -> bytes:
    """The body of one Span message."""
    context: SpanContext = readable.context
    parent = readable.parent
    start, end = readable.start_time, readable.end_time
    parts = [
        _ids(context),
        _trace_state(b"\x1a", context),
        _PARENT.pack(b'"\x08', parent.span_id) if parent else b"",
        _FLAG_FIELDS[_flags(parent)],
        _cached(_NAMES, readable.name, _name),
        KINDS[readable.kind],
        _BOTH_TIMES.pack(0x39, start, 0x41, end)
        if start and end
        else _times((0x39, 0x41), start, end),
    ]
    parts += attributes(b"\x4a", readable.attributes)
    parts.append(_count(b"\x50", readable.dropped_attributes))
    parts += _events(readable)
    parts += _links(readable)
    status = readable.status
    if status is not None:
        parts.append(_cached(_STATUSES, (status.status_code, status.description), _status_of))
    return b"".join(parts)


def _scope(scope: Any) -> tuple[bytes, bytes]:
    """A ScopeSpans' scope field (1) and its schema_url field (3), as the SDK's encoder sets them
    (an empty scope for a span without one)."""
    if scope is None:
        return b"\x0a\x00", b""
    body = _string(b"\x0a", scope.name) + _string(b"\x12", scope.version)
    body += b"".join(attributes(b"\x1a", scope.attributes))
    return _field(b"\x0a", body), _string(b"\x1a", scope.schema_url)


def encode_spans(spans: Iterable[ReadableSpan]) -> bytes:
    """The serialized ExportTraceServiceRequest of spans."""
    groups: dict[Any, dict[Any, list[bytes]]] = {}
    last: tuple[Any, Any, list[bytes]] = (_NONE, _NONE, [])
    for readable in spans:
        resource, scope = readable.resource, readable.instrumentation_scope or None
        if resource is not last[0] or scope is not last[1]:
            # Grouped as the SDK groups (by equality); the same objects as the last span's
            # need no hashing (a Resource hashes by JSON-encoding its attributes).
            last = (resource, scope, groups.setdefault(resource, {}).setdefault(scope, []))
        last[2].append(_field(b"\x12", span(readable)))
    out: list[bytes] = []
    for resource, scopes in groups.items():
        body = [_field(b"\x0a", b"".join(attributes(b"\x0a", resource.attributes)))]
        for scope, encoded in scopes.items():
            head, url = _scope(scope)
            body.append(_field(b"\x12", b"".join((head, *encoded, url))))
        body.append(_string(b"\x1a", resource.schema_url))
        out.append(_field(b"\x0a", b"".join(body)))
    return b"".join(out)
