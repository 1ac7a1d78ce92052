"""Protobuf's scalar kinds as JSON and text, both ways, so that nothing is lost or bent.

A value is accepted only if protobuf can hold it exactly as meant: integers in their type's
range, floats that round to a finite 32-bit value (FLT_MAX as protobuf and Go print it,
3.4028235e+38, rounds to FLT_MAX and is accepted; 3.5e+38 would become Infinity and is refused),
finite numbers for doubles (an overflowing literal such as 1e400 is refused; "Infinity" is the
way to say infinity), text without lone surrogates. Floats are written as the shortest decimal
that reads back to the same 32-bit value (0.1, not 0.10000000149011612), as protobuf does.
"""

from __future__ import annotations

import base64
import math
import re
import struct
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from rest_bridge.descriptors import encodable


class DecodeError(ValueError):
    """JSON that does not fit the message; str(error) is a message for people."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


INT_RANGES: dict[int, tuple[int, int]] = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
FLOATS = frozenset({FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE})
INTEGER = re.compile(r"-?[0-9]{1,20}")
_FLOAT = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_BOOLS = {"true": True, "false": False, "1": True, "0": False}
_FLOAT_PROBLEM = "must be a number a 32-bit float can hold (at most 3.4028235e+38 either way)"
_DOUBLE_PROBLEM = 'must be a finite number, or "NaN", "Infinity" or "-Infinity" as a string'


def int_problem(kind: int) -> str:
    low, high = INT_RANGES[kind]
    return f"must be an integer from {low} to {high}"


def check_range(kind: int, value: int, path: str) -> int:
    low, high = INT_RANGES[kind]
    if not low <= value <= high:
        raise DecodeError(f"{path}: {int_problem(kind)}", path)
    return value


def integer_from_json(kind: int, value: Any, path: str) -> int:
    """A JSON number (integral, of any length) or numeric string as an integer of kind."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DecodeError(f"{path}: {int_problem(kind)}", path)
    if isinstance(value, str):
        return integer_from_text(kind, value, path)
    if isinstance(value, float):
        if not value.is_integer():  # NaN and the infinities included
            raise DecodeError(f"{path}: {int_problem(kind)}", path)
        value = int(value)
    return check_range(kind, value, path)


def integer_from_text(kind: int, text: str, path: str) -> int:
    if not INTEGER.fullmatch(text):
        raise DecodeError(f"{path}: {int_problem(kind)}", path)
    return check_range(kind, int(text), path)


def float_from_json(kind: int, value: Any, path: str) -> float:
    """A JSON number, or one of the strings protobuf allows, as a float or double."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DecodeError(f"{path}: must be a number", path)
    if isinstance(value, str):
        return float_from_text(kind, value, path)
    try:
        number = float(value)
    except OverflowError:  # an integer literal beyond any double
        number = math.inf
    if not math.isfinite(number):
        # A JSON number never means NaN or Infinity: only an overflowing literal gets here.
        raise DecodeError(f"{path}: {_problem(kind)}", path)
    return _fit(kind, number, path)


def float_from_text(kind: int, text: str, path: str) -> float:
    if text in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[text]
    if not _FLOAT.fullmatch(text):
        raise DecodeError(f"{path}: must be a number", path)
    number = float(text)
    if math.isinf(number):
        raise DecodeError(f"{path}: {_problem(kind)}", path)
    return _fit(kind, number, path)


def _problem(kind: int) -> str:
    return _FLOAT_PROBLEM if kind == FieldDescriptor.TYPE_FLOAT else _DOUBLE_PROBLEM


def _fit(kind: int, number: float, path: str) -> float:
    """number, rounded to 32 bits for a float field; refused when that rounds to infinity."""
    if kind != FieldDescriptor.TYPE_FLOAT:
        return number
    try:
        return float(struct.unpack("<f", struct.pack("<f", number))[0])
    except OverflowError as exc:
        raise DecodeError(f"{path}: {_FLOAT_PROBLEM}", path) from exc


def bool_from_text(text: str, path: str) -> bool:
    value = _BOOLS.get(text.lower())
    if value is None:
        raise DecodeError(f"{path}: must be true or false", path)
    return value


def bytes_from_text(text: str, path: str) -> bytes:
    """Standard or URL-safe base64, padding optional, as proto3 JSON allows."""
    try:
        padded = text + "=" * (-len(text) % 4)
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except ValueError as exc:
        raise DecodeError(f"{path}: must be base64", path) from exc


def string_from_text(text: str, path: str) -> str:
    if not text.isascii() and not encodable(text):
        raise DecodeError(f"{path}: must be valid Unicode (it holds a lone surrogate)", path)
    return text


def float_to_json(value: float) -> Any:
    """A double as JSON: itself, or the proto3 JSON string for NaN and the infinities."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def float32_to_json(value: float) -> Any:
    """A 32-bit float as the shortest decimal that reads back to the same 32-bit value."""
    if not math.isfinite(value):
        return float_to_json(value)
    for digits in range(6, 10):
        short = float(f"{value:.{digits}g}")
        try:
            if struct.pack("<f", short) == struct.pack("<f", value):
                return short
        except OverflowError:  # rounded up past FLT_MAX: more digits are needed
            continue
    return value


def bytes_to_json(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
