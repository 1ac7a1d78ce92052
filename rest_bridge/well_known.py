"""The JSON forms of the google.protobuf types, apart from the codec that walks user messages.

Timestamp and FieldMask have the contract's own forms (see rest_bridge.codec, deviation 2); the
wrappers are read and written by the codec as fields of their kind (WRAPPERS: 64-bit ones as
numbers, deviation 3); every other well-known type is left to `google.protobuf.json_format`.
Stateless functions, so the codec can compile them into its encoders once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

WRAPPERS = frozenset(
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)
"""The wrapper types: the codec reads and writes their value as a field of its kind."""
_FIELD_MASK = "google.protobuf.FieldMask"
_NAIVE_EPOCH = datetime(1970, 1, 1)
_DATES: dict[int, str] = {}
"""Days since the epoch -> "YYYY-MM-DD": a checkpoint's two timestamps mostly share a few days,
and the calendar arithmetic was half of a timestamp's cost."""
_MAX_DATES = 4096
_CAMEL_HUMP = re.compile(r"(?<=[a-zA-Z0-9])([A-Z])")  # every capital after the first letter
_PROBLEMS = {
    "google.protobuf.Timestamp": "must be an RFC 3339 timestamp, e.g. 2026-01-31T12:00:00Z",
    "google.protobuf.Duration": 'must be a duration in seconds with an "s" suffix, e.g. "1.5s"',
    _FIELD_MASK: "must be a comma-separated list of field paths",
}


def encoder(desc: Descriptor) -> Callable[[Any], Any]:
    """The function that renders a message of this well-known type as JSON."""
    if desc.full_name == "google.protobuf.Timestamp":
        return _timestamp
    if desc.full_name == _FIELD_MASK:
        # Proto field names, as everywhere in this API (not proto3 JSON's lowerCamelCase).
        return lambda m: ",".join(m.paths)
    return lambda m: json_format.MessageToDict(m, preserving_proto_field_name=True)


def decode(value: Any, msg: Message, desc: Descriptor) -> None:
    """Merge a JSON value into msg, a message of the well-known type desc.

    Raises:
        ValueError: the value does not fit; problem(desc) says what would.
    """
    if desc.full_name == _FIELD_MASK:
        if not isinstance(value, str):
            raise ValueError("a FieldMask is a string")
        msg.paths.extend(_mask_paths(value))  # type: ignore[attr-defined]
        return
    try:
        json_format.ParseDict(value, msg)
    except (json_format.ParseError, TypeError, ValueError, OverflowError) as exc:
        # OverflowError: json_format turns a Duration's fraction into a float and multiplies
        # ("1.4e+38000s" is Infinity nanoseconds), found by the codec fuzzer.
        raise ValueError(str(exc)) from exc


def problem(desc: Descriptor) -> str:
    """What a value of this well-known type must look like, for error messages."""
    return _PROBLEMS.get(desc.full_name, f"is not a valid {desc.name}")


def _mask_paths(text: str) -> list[str]:
    """FieldMask paths from a comma list, in proto (snake_case) names; lowerCamelCase accepted."""
    return [
        _CAMEL_HUMP.sub(r"_\1", part.strip()).lower() for part in text.split(",") if part.strip()
    ]


def _timestamp(msg: Any) -> Any:
    """RFC 3339 in UTC, exactly as json_format writes it (0, 3, 6 or 9 fraction digits), but
    without its per-call overhead: two timestamps are in every checkpoint."""
    nanos: int = msg.nanos
    day, second = divmod(msg.seconds, 86_400)
    date = _DATES.get(day)
    if date is None:
        try:
            date = (_NAIVE_EPOCH + timedelta(days=day)).date().isoformat()
        except OverflowError:
            return json_format.MessageToDict(msg)  # out of Timestamp's range: let it explain
        if len(_DATES) >= _MAX_DATES:
            _DATES.clear()
        _DATES[day] = date
    hour, second = divmod(second, 3600)
    minute, second = divmod(second, 60)
    text = f"{date}T{hour:02d}:{minute:02d}:{second:02d}"
    if not nanos:
        return text + "Z"
    if nanos % 1_000_000 == 0:
        return f"{text}.{nanos // 1_000_000:03d}Z"
    if nanos % 1000 == 0:
        return f"{text}.{nanos // 1000:06d}Z"
    return f"{text}.{nanos:09d}Z"
