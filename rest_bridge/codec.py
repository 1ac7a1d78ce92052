"""Protobuf <-> JSON as the contract maps it: proto3 JSON with four named deviations.

Encoders and decoders are compiled once per message type; rest_bridge.well_known holds the
forms of the google.protobuf types. The deviations from proto3 JSON:

1. Field names are the proto names (display_name), and every field without presence is
   emitted, zero values included; unset message fields render as their zero-valued message
   (null for well-known types and for recursive types, which have no finite zero value).
2. FieldMask paths are proto names too ("display_name,state"); lowerCamelCase is accepted.
3. 64-bit integers are JSON numbers, not strings; input accepts a number or a numeric string.
4. Enums are their lowercase value name without the type prefix (CHECKPOINT_STATE_READY ->
   "ready"); the zero ("unspecified") value is never emitted. Input accepts the short name, the
   full name (in any letter case) or the number.

Timestamps are RFC 3339 in UTC ("Z"), as json_format writes them.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from rest_bridge import well_known
from rest_bridge.descriptors import (
    descriptor_of,
    encodable,
    enum_of,
    enum_short_name,
    find_field,
    is_map,
    is_well_known,
    message_of,
)

Encoder = Callable[[Any], Any]


class DecodeError(ValueError):
    """JSON that does not fit the message; str(error) is a message for people."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class Codec:
    def __init__(self, *, enums_as_numbers: bool = False) -> None:
        self.enums_as_numbers = enums_as_numbers
        """Render enums as their numbers ($alt=json;enum-encoding=int); input is unchanged."""
        self._encoders: dict[str, Encoder] = {}
        self._zero: dict[str, Any] = {}
        self._enum_inputs: dict[str, dict[str, int]] = {}

    # -- encoding --------------------------------------------------------------------------

    def encode(self, msg: Message) -> Any:
        """The JSON value (dicts, lists, scalars) of a message, per the contract's mapping."""
        desc = descriptor_of(msg)
        return self.encoder(desc)(msg)

    def encoder(self, desc: Descriptor) -> Encoder:
        found = self._encoders.get(desc.full_name)
        if found is None:
            found = self._compile(desc)
        return found

    def _compile(self, desc: Descriptor) -> Encoder:
        if is_well_known(desc):
            encoder = well_known.encoder(desc)
            self._encoders[desc.full_name] = encoder
            return encoder
        plan: list[tuple[str, int, Encoder, Any]] = []

        def encode_message(msg: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, mode, encode, zero in plan:
                if mode == _ALWAYS:
                    out[name] = encode(getattr(msg, name))
                elif mode == _ENUM:
                    value = encode(getattr(msg, name))
                    if value is not None:
                        out[name] = value
                elif msg.HasField(name):
                    out[name] = encode(getattr(msg, name))
                elif zero is not _OMIT:
                    # zero is the unset field's message type; its rendering is computed once.
                    out[name] = self.zero_value(zero)
            return out

        # Registered before the fields compile, so recursive types find themselves.
        self._encoders[desc.full_name] = encode_message
        for fld in desc.fields:
            plan.append(self._field_plan(fld))
        return encode_message

    def _field_plan(self, fld: FieldDescriptor) -> tuple[str, int, Encoder, Any]:
        name = fld.name
        if is_map(fld):
            key_fld = message_of(fld).fields_by_name["key"]
            value_fld = message_of(fld).fields_by_name["value"]
            value_encode = self._single(value_fld)
            key_encode = _map_key(key_fld)
            return (
                name,
                _ALWAYS,
                lambda m: {key_encode(k): value_encode(v) for k, v in m.items()},
                None,
            )
        single = self._single(fld)
        if fld.is_repeated:
            if fld.type == FieldDescriptor.TYPE_ENUM:
                return (
                    name,
                    _ALWAYS,
                    lambda vs: [e for v in vs if (e := single(v)) is not None],
                    None,
                )
            return (name, _ALWAYS, lambda values: [single(v) for v in values], None)
        if fld.type == FieldDescriptor.TYPE_MESSAGE and fld.containing_oneof is None:
            return (name, _PRESENCE, single, message_of(fld))
        if fld.has_presence:
            return (name, _PRESENCE, single, _OMIT)
        if fld.type == FieldDescriptor.TYPE_ENUM:
            # The unspecified value is never emitted (contract): the key is dropped for it.
            return (name, _ENUM, single, None)
        return (name, _ALWAYS, single, None)

    def zero_value(self, desc: Descriptor, _seen: frozenset[str] = frozenset()) -> Any:
        """How an unset field of this message type renders: its zero message, or null."""
        if desc.full_name in self._zero:
            return self._zero[desc.full_name]
        if is_well_known(desc) or desc.full_name in _seen:
            return None
        seen = _seen | {desc.full_name}
        for fld in desc.fields:
            if (
                _is_singular_message(fld)
                and not is_well_known(message_of(fld))
                and self.zero_value(message_of(fld), seen) is None
            ):
                self._zero[desc.full_name] = None
                return None
        value = self.encoder(desc)(message_factory.GetMessageClass(desc)())
        self._zero[desc.full_name] = value
        return value

    def _single(self, fld: FieldDescriptor) -> Encoder:
        kind = fld.type
        if kind == FieldDescriptor.TYPE_MESSAGE:
            # Direct reference: a type being compiled is registered first, so recursion is fine.
            return self.encoder(message_of(fld))
        if kind == FieldDescriptor.TYPE_ENUM:
            names: dict[int, str | int | None] = {
                v.number: v.number
                if self.enums_as_numbers
                else enum_short_name(enum_of(fld), v.number)
                for v in enum_of(fld).values
            }
            names[0] = None
            return lambda number: names.get(number, number)
        if kind == FieldDescriptor.TYPE_BYTES:
            return lambda raw: base64.b64encode(raw).decode("ascii")
        if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
            return _float
        return _identity

    # -- decoding --------------------------------------------------------------------------

    def decode(self, value: Any, msg: Message, path: str = "") -> None:
        """Merge a JSON value into msg; path names msg in error messages ("" for the body).

        Raises:
            DecodeError: the value does not fit the message; the message names the field.
        """
        try:
            self._decode_message(value, msg, path)
        except RecursionError as exc:
            raise DecodeError("JSON body is nested too deeply", path) from exc

    def _decode_message(self, value: Any, msg: Message, path: str) -> None:
        desc = descriptor_of(msg)
        if is_well_known(desc):
            try:
                well_known.decode(value, msg, desc)
            except ValueError as exc:
                raise DecodeError(f"{_name(path)}: {well_known.problem(desc)}", path) from exc
            return
        if not isinstance(value, dict):
            raise DecodeError(f"{_name(path)}: must be a JSON object", path)
        oneofs: dict[str, str] = {}
        for key, item in value.items():
            fld = find_field(desc, key)
            sub = f"{path}.{key}" if path else str(key)
            if fld is None:
                raise DecodeError(f"{sub}: unknown field", sub)
            sub = f"{path}.{fld.name}" if path else fld.name
            if item is None:
                continue  # proto3 JSON: null means the default value
            if fld.containing_oneof is not None:
                other = oneofs.setdefault(fld.containing_oneof.name, fld.name)
                if other != fld.name:
                    raise DecodeError(f"{sub}: only one of {other} and {fld.name} may be set", sub)
            self._decode_field(fld, item, msg, sub)

    def _decode_field(self, fld: FieldDescriptor, item: Any, msg: Message, path: str) -> None:
        target: Any = getattr(msg, fld.name)
        if is_map(fld):
            if not isinstance(item, dict):
                raise DecodeError(f"{path}: must be a JSON object", path)
            key_fld = message_of(fld).fields_by_name["key"]
            value_fld = message_of(fld).fields_by_name["value"]
            for key, val in item.items():
                entry = f"{path}[{key}]"
                parsed_key = self.scalar_from_text(key_fld, key, entry)
                if value_fld.type == FieldDescriptor.TYPE_MESSAGE:
                    self._decode_message(val, target[parsed_key], entry)
                else:
                    target[parsed_key] = self.scalar_from_json(value_fld, val, entry)
        elif fld.is_repeated:
            if not isinstance(item, list):
                raise DecodeError(f"{path}: must be a JSON array", path)
            for index, element in enumerate(item):
                entry = f"{path}[{index}]"
                if fld.type == FieldDescriptor.TYPE_MESSAGE:
                    self._decode_message(element, target.add(), entry)
                else:
                    target.append(self.scalar_from_json(fld, element, entry))
        elif fld.type == FieldDescriptor.TYPE_MESSAGE:
            target.SetInParent()
            self._decode_message(item, target, path)
        else:
            setattr(msg, fld.name, self.scalar_from_json(fld, item, path))

    def scalar_from_json(self, fld: FieldDescriptor, value: Any, path: str) -> Any:
        """A JSON scalar as the Python value of a non-message field.

        Raises:
            DecodeError: wrong JSON type or out of range.
        """
        kind = fld.type
        if kind in _INT_RANGES:
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise DecodeError(f"{path}: {_int_problem(kind)}", path)
            if isinstance(value, str):
                return self.scalar_from_text(fld, value, path)
            if isinstance(value, float):
                if not value.is_integer():
                    raise DecodeError(f"{path}: {_int_problem(kind)}", path)
                value = int(value)
            return _check_range(kind, value, path)
        if kind == FieldDescriptor.TYPE_BOOL:
            if not isinstance(value, bool):
                raise DecodeError(f"{path}: must be true or false", path)
            return value
        if kind == FieldDescriptor.TYPE_ENUM:
            if isinstance(value, int) and not isinstance(value, bool):
                return self.enum_number(enum_of(fld), str(value), path)
            if not isinstance(value, str):
                raise DecodeError(f"{path}: must be a string", path)
            return self.enum_number(enum_of(fld), value, path)
        if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise DecodeError(f"{path}: must be a number", path)
            if isinstance(value, str):
                return self.scalar_from_text(fld, value, path)
            return float(value)
        if not isinstance(value, str):
            raise DecodeError(f"{path}: must be a string", path)
        return self.scalar_from_text(fld, value, path)

    def scalar_from_text(self, fld: FieldDescriptor, text: str, path: str) -> Any:
        """A path or query-string value (or a JSON string) as the value of a non-message field.

        Raises:
            DecodeError: the text does not parse as the field's type.
        """
        kind = fld.type
        if kind in _INT_RANGES:
            if not _INTEGER.fullmatch(text):
                raise DecodeError(f"{path}: {_int_problem(kind)}", path)
            return _check_range(kind, int(text), path)
        if kind == FieldDescriptor.TYPE_BOOL:
            lowered = text.lower()
            if lowered not in _BOOLS:
                raise DecodeError(f"{path}: must be true or false", path)
            return _BOOLS[lowered]
        if kind == FieldDescriptor.TYPE_ENUM:
            return self.enum_number(enum_of(fld), text, path)
        if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
            if text in _SPECIAL_FLOATS:
                return _SPECIAL_FLOATS[text]
            if not _FLOAT.fullmatch(text):
                raise DecodeError(f"{path}: must be a number", path)
            return float(text)
        if kind == FieldDescriptor.TYPE_BYTES:
            try:
                padded = text + "=" * (-len(text) % 4)
                return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
            except ValueError as exc:
                raise DecodeError(f"{path}: must be base64", path) from exc
        if not text.isascii() and not encodable(text):
            raise DecodeError(f"{path}: must be valid Unicode (it holds a lone surrogate)", path)
        return text

    def enum_number(self, enum: EnumDescriptor, text: str, path: str) -> int:
        """The number for an enum given by short name, full name or number.

        Raises:
            DecodeError: no such value.
        """
        inputs = self._enum_inputs.get(enum.full_name)
        if inputs is None:
            inputs = {}
            for v in enum.values:
                inputs[v.name] = v.number
                inputs[str(v.number)] = v.number
                short = enum_short_name(enum, v.number)
                if short is not None and v.number != 0:
                    inputs[short] = v.number
            self._enum_inputs[enum.full_name] = inputs
        # Names in another letter case ("READY", "Ready") are accepted too: input is lenient.
        number = inputs.get(text)
        if number is None:
            number = inputs.get(text.lower(), inputs.get(text.upper()))
        if number is not None:
            return number
        allowed = ", ".join(
            n for v in enum.values if v.number != 0 and (n := enum_short_name(enum, v.number))
        )
        raise DecodeError(f"{_name(path)}: must be one of {allowed}", path)


_OMIT = object()
_ALWAYS, _PRESENCE, _ENUM = 0, 1, 2
"""Field modes: always emitted; emitted when set (else its zero); enum, dropped when unspecified."""


def _is_singular_message(fld: FieldDescriptor) -> bool:
    return (
        fld.type == FieldDescriptor.TYPE_MESSAGE
        and not fld.is_repeated
        and fld.containing_oneof is None
    )


_INT_RANGES: dict[int, tuple[int, int]] = {
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
_INTEGER = re.compile(r"-?[0-9]{1,20}")
_FLOAT = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_BOOLS = {"true": True, "false": False, "1": True, "0": False}


def _int_problem(kind: int) -> str:
    low, high = _INT_RANGES[kind]
    return f"must be an integer from {low} to {high}"


def _check_range(kind: int, value: int, path: str) -> int:
    low, high = _INT_RANGES[kind]
    if not low <= value <= high:
        raise DecodeError(f"{path}: {_int_problem(kind)}", path)
    return value


def _name(path: str) -> str:
    return path or "request body"


def _identity(value: Any) -> Any:
    return value


def _float(value: float) -> Any:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _map_key(fld: FieldDescriptor) -> Callable[[Any], str]:
    if fld.type == FieldDescriptor.TYPE_BOOL:
        return lambda k: "true" if k else "false"
    return str
