"""Protobuf <-> JSON as the contract maps it: proto3 JSON with four named deviations.

Encoders and decoders are compiled once per message type; rest_bridge.well_known holds the
forms of the google.protobuf types. The deviations from proto3 JSON:

1. Field names are the proto names (display_name), and every field without presence is
   emitted, zero values included; unset message fields render as their zero-valued message
   (null for well-known types and for recursive types, which have no finite zero value; an
   unset google.protobuf.Value is left out, since null is one of its values).
2. FieldMask paths are proto names too ("display_name,state"); lowerCamelCase is accepted.
3. 64-bit integers are JSON numbers, not strings; input accepts a number or a numeric string.
4. Enums are their lowercase value name without the type prefix (CHECKPOINT_STATE_READY ->
   "ready"); a singular field at the zero ("unspecified") value is left out, while a list
   element or map value at zero is written as its short name ("unspecified"), so no list
   changes length. Input accepts the short name, the full name (in any letter case) or the
   number (see rest_bridge.enums).

Scalars (ranges, 32-bit rounding, surrogates) are rest_bridge.scalars: a value protobuf cannot
hold exactly is refused, never bent.

Timestamps are RFC 3339 in UTC ("Z"), as json_format writes them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from rest_bridge import scalars, well_known
from rest_bridge.descriptors import (
    descriptor_of,
    enum_of,
    find_field,
    is_map,
    is_well_known,
    message_of,
)
from rest_bridge.enums import EnumNames
from rest_bridge.scalars import DecodeError

__all__ = ["Codec", "DecodeError"]

Encoder = Callable[[Any], Any]


class Codec:
    def __init__(self, *, enums_as_numbers: bool = False) -> None:
        self.enums_as_numbers = enums_as_numbers
        """Render enums as their numbers ($alt=json;enum-encoding=int); input is unchanged."""
        self._encoders: dict[str, Encoder] = {}
        self._by_descriptor: dict[Descriptor, Encoder] = {}
        """encoder() by descriptor object: hashing it is cheaper than reading its full_name."""
        self._zero: dict[str, Any] = {}
        self._float_free: dict[Descriptor, bool] = {}
        self._enums = EnumNames()

    # -- encoding --------------------------------------------------------------------------

    def encode(self, msg: Message) -> Any:
        """The JSON value (dicts, lists, scalars) of a message, per the contract's mapping."""
        desc = descriptor_of(msg)
        found = self._by_descriptor.get(desc)
        if found is None:
            if len(self._by_descriptor) >= _MAX_DESCRIPTORS:
                self._by_descriptor.clear()  # schemas swapped in keep bringing new descriptors
            found = self._by_descriptor[desc] = self.encoder(desc)
        return found(msg)

    def encoder(self, desc: Descriptor) -> Encoder:
        found = self._encoders.get(desc.full_name)
        if found is None:
            found = self._compile(desc)
        return found

    def _compile(self, desc: Descriptor) -> Encoder:
        if desc.full_name in well_known.WRAPPERS:
            # The wrapped value is written exactly as a field of its kind would be.
            value = self._single(desc.fields_by_name["value"])
            self._encoders[desc.full_name] = lambda m: value(m.value)
            return self._encoders[desc.full_name]
        if is_well_known(desc):
            encoder = well_known.encoder(desc)
            self._encoders[desc.full_name] = encoder
            return encoder
        plan: list[tuple[str, int, Encoder, Any]] = []

        def encode_message(msg: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, mode, encode, zero in plan:
                if mode == _PLAIN:
                    out[name] = getattr(msg, name)
                elif mode == _ALWAYS:
                    out[name] = encode(getattr(msg, name))
                elif mode == _ENUM:
                    number = getattr(msg, name)
                    if number:
                        out[name] = encode(number)
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
            return (name, _ALWAYS, lambda values: [single(v) for v in values], None)
        if _holds_null(fld):
            return (name, _PRESENCE, single, _OMIT)  # null would read back as null_value
        if fld.type == FieldDescriptor.TYPE_MESSAGE and fld.containing_oneof is None:
            return (name, _PRESENCE, single, message_of(fld))
        if fld.has_presence:
            return (name, _PRESENCE, single, _OMIT)
        if fld.type == FieldDescriptor.TYPE_ENUM:
            # The unspecified value is never emitted (contract): the key is dropped for it.
            return (name, _ENUM, single, None)
        return (name, _PLAIN if single is _identity else _ALWAYS, single, None)

    def float_free(self, desc: Descriptor) -> bool:
        """True when no JSON value of this type can hold a float (no double or float field,
        Value, Struct or Any anywhere inside): rest_bridge.envelope may then write it with
        orjson, whose bytes equal json's for every value but floats (1e-05 against 1e-5)."""
        found = self._float_free.get(desc)
        if found is None:
            if len(self._float_free) >= _MAX_DESCRIPTORS:
                self._float_free.clear()
            found = self._float_free[desc] = _float_free(desc, set())
        return found

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
            if self.enums_as_numbers:  # $alt=json;enum-encoding=int
                return _identity
            return self._enums.writer(enum_of(fld))
        return _SCALAR_WRITERS.get(kind, _identity)

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
        if desc.full_name in well_known.WRAPPERS:
            value_fld = desc.fields_by_name["value"]
            setattr(msg, "value", self.scalar_from_json(value_fld, value, path or "value"))  # noqa: B010
            return
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
            if item is None and not _holds_null(fld):
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
            DecodeError: wrong JSON type, out of range, or not exactly representable.
        """
        kind = fld.type
        if kind in scalars.INT_RANGES:
            return scalars.integer_from_json(kind, value, path)
        if kind in scalars.FLOATS:
            return scalars.float_from_json(kind, value, path)
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
        if not isinstance(value, str):
            raise DecodeError(f"{path}: must be a string", path)
        return self.scalar_from_text(fld, value, path)

    def scalar_from_text(self, fld: FieldDescriptor, text: str, path: str) -> Any:
        """A path or query-string value (or a JSON string) as the value of a non-message field.

        Raises:
            DecodeError: the text does not parse as the field's type.
        """
        kind = fld.type
        if kind in scalars.INT_RANGES:
            return scalars.integer_from_text(kind, text, path)
        if kind in scalars.FLOATS:
            return scalars.float_from_text(kind, text, path)
        if kind == FieldDescriptor.TYPE_BOOL:
            return scalars.bool_from_text(text, path)
        if kind == FieldDescriptor.TYPE_ENUM:
            return self.enum_number(enum_of(fld), text, path)
        if kind == FieldDescriptor.TYPE_BYTES:
            return scalars.bytes_from_text(text, path)
        return scalars.string_from_text(text, path)

    def enum_number(self, enum: EnumDescriptor, text: str, path: str) -> int:
        """The number for an enum given by short name, full name or number.

        Raises:
            DecodeError: no such value.
        """
        return self._enums.number(enum, text, path)


_MAX_DESCRIPTORS = 4096
"""Descriptors remembered by object; cleared when full, so the pools of schemas swapped out
(rest_bridge.live_schema) are not kept alive by the codec's look-up tables."""
_OMIT = object()
_PLAIN, _ALWAYS, _PRESENCE, _ENUM = 0, 1, 2, 3
"""Field modes: always emitted as it is (strings, integers, booleans); always emitted through its
writer; emitted when set (else its zero); enum, dropped when unspecified."""


_FLOAT_FREE_WELL_KNOWN = frozenset(
    {
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
        "google.protobuf.FieldMask",
        "google.protobuf.Empty",
        *(well_known.WRAPPERS - {"google.protobuf.DoubleValue", "google.protobuf.FloatValue"}),
    }
)
"""The well-known types whose JSON has no number that is not an integer."""
_FLOATS = frozenset({FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT})


def _float_free(desc: Descriptor, seen: set[str]) -> bool:
    if is_well_known(desc):
        return desc.full_name in _FLOAT_FREE_WELL_KNOWN
    if desc.full_name in seen:
        return True  # a recursive type: its fields are being checked further up
    seen.add(desc.full_name)
    for fld in desc.fields:
        if fld.type in _FLOATS:
            return False
        if fld.type == FieldDescriptor.TYPE_MESSAGE and not _float_free(message_of(fld), seen):
            return False
    return True


def _is_singular_message(fld: FieldDescriptor) -> bool:
    return (
        fld.type == FieldDescriptor.TYPE_MESSAGE
        and not fld.is_repeated
        and fld.containing_oneof is None
    )


def _holds_null(fld: FieldDescriptor) -> bool:
    """True for a singular google.protobuf.Value field, where null is a value (null_value)."""
    return (
        fld.type == FieldDescriptor.TYPE_MESSAGE
        and not fld.is_repeated
        and message_of(fld).full_name == "google.protobuf.Value"
    )


def _name(path: str) -> str:
    return path or "request body"


def _identity(value: Any) -> Any:
    return value


_SCALAR_WRITERS: dict[int, Encoder] = {
    FieldDescriptor.TYPE_BYTES: scalars.bytes_to_json,
    FieldDescriptor.TYPE_FLOAT: scalars.float32_to_json,
    FieldDescriptor.TYPE_DOUBLE: scalars.float_to_json,
}


def _map_key(fld: FieldDescriptor) -> Callable[[Any], str]:
    if fld.type == FieldDescriptor.TYPE_BOOL:
        return lambda k: "true" if k else "false"
    return str
