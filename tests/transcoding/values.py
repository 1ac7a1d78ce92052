"""Hypothesis strategies for any message of the echo service, and proto3 JSON <-> contract JSON.

`messages(desc)` draws a message with random values in every field kind protobuf has (extremes,
NaN and the infinities, 32-bit floats, unknown numbers of open enums, lone-surrogate-free text).
Singular non-well-known message fields are always set: the contract renders an unset one as its
zero message (codec deviation 1), which reads back as set. `to_proto3(value, desc)` undoes the
contract's deviations 2 and 4 on a JSON value, so google.protobuf.json_format can read it.
"""

from __future__ import annotations

import math
import re
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from rest_bridge.descriptors import enum_of, enum_short_name, is_map, is_well_known, message_of

F = FieldDescriptor
_INTS = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1),
    F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_FIXED32: (0, 2**32 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1),
    F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1),
    F.TYPE_FIXED64: (0, 2**64 - 1),
}
_PATH = st.from_regex(r"[a-z]{1,6}(_[a-z]{1,6}){0,2}(\.[a-z]{1,6}(_[a-z]{1,6})?)?", fullmatch=True)
_JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)


def _ints(kind: int) -> st.SearchStrategy[int]:
    low, high = _INTS[kind]
    return st.integers(low, high) | st.sampled_from([low, high, 0])


def scalar(fld: FieldDescriptor) -> st.SearchStrategy[Any]:
    """Values protobuf can hold in a non-message field of this kind."""
    kind = fld.type
    if kind in _INTS:
        return _ints(kind)
    if kind == F.TYPE_FLOAT:
        return st.floats(width=32) | st.sampled_from(
            [3.4028234663852886e38, -1.401298464324817e-45]
        )
    if kind == F.TYPE_DOUBLE:
        return st.floats() | st.sampled_from([1.7976931348623157e308, 5e-324])
    if kind == F.TYPE_BOOL:
        return st.booleans()
    if kind == F.TYPE_STRING:
        return st.text(max_size=20)
    if kind == F.TYPE_BYTES:
        return st.binary(max_size=20)
    numbers = [v.number for v in fld.enum_type.values]  # type: ignore[union-attr]
    return st.sampled_from(numbers) | st.integers(-(2**31), 2**31 - 1)  # open enum


def _well_known(desc: Descriptor) -> st.SearchStrategy[Message]:
    cls = message_factory.GetMessageClass(desc)
    name = desc.full_name
    if name.endswith("Value") and list(desc.fields_by_name) == ["value"]:
        return scalar(desc.fields_by_name["value"]).map(lambda v: cls(value=v))
    if name == "google.protobuf.Timestamp":
        seconds = st.integers(-62135596800, 253402300799)
        return st.builds(cls, seconds=seconds, nanos=st.integers(0, 999_999_999))
    if name == "google.protobuf.Duration":
        return st.integers(-315576000000, 315576000000).flatmap(
            lambda s: st.builds(
                cls,
                seconds=st.just(s),
                nanos=st.integers(0, 999_999_999).map(lambda n: -n if s < 0 else n),
            )
        )
    if name == "google.protobuf.FieldMask":
        return st.lists(_PATH, max_size=3).map(lambda paths: cls(paths=paths))
    if name == "google.protobuf.Struct":
        return st.dictionaries(st.text(max_size=5), _JSON, max_size=3).map(_struct(cls))
    if name == "google.protobuf.Value":
        return _JSON.map(_value(cls))
    raise NotImplementedError(name)


def _struct(cls: Any) -> Any:
    def build(items: dict[str, Any]) -> Message:
        msg = cls()
        msg.update(items)
        return msg  # type: ignore[no-any-return]

    return build


def _value(cls: Any) -> Any:
    def build(item: Any) -> Message:
        holder: Any = message_factory.GetMessageClass(
            cls.DESCRIPTOR.file.message_types_by_name["Struct"]
        )()
        holder.update({"v": item})
        msg = cls()
        msg.CopyFrom(holder.fields["v"])
        return msg  # type: ignore[no-any-return]

    return build


def messages(desc: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of desc with random values, every singular plain message field set."""
    if is_well_known(desc):
        return _well_known(desc)
    cls = message_factory.GetMessageClass(desc)
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for fld in desc.fields:
        parts[fld.name] = _field(fld, depth)
    oneofs = {o.name: [f.name for f in o.fields] for o in desc.oneofs if o.fields}

    def build(values: dict[str, Any], chosen: dict[str, str | None]) -> Message:
        msg = cls()
        for fld in desc.fields:
            oneof = fld.containing_oneof
            if oneof is not None and chosen.get(oneof.name) != fld.name:
                continue
            _assign(msg, fld, values[fld.name])
        return msg

    choice = st.fixed_dictionaries(
        {name: st.sampled_from([None, *fields]) for name, fields in oneofs.items()}
    )
    return st.builds(build, st.fixed_dictionaries(parts), choice)


def _field(fld: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if is_map(fld):
        entry = message_of(fld)
        key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
        values = _single(value, depth)
        return st.dictionaries(scalar(key), values, max_size=3)
    if fld.is_repeated:
        return st.lists(_single(fld, depth), max_size=3)
    single = _single(fld, depth)
    if fld.has_presence and fld.type != F.TYPE_MESSAGE:
        return st.none() | single
    if fld.type == F.TYPE_MESSAGE and is_well_known(message_of(fld)):
        return st.none() | single
    return single


def _single(fld: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if fld.type == F.TYPE_MESSAGE:
        return messages(message_of(fld), depth + 1)
    return scalar(fld)


def _assign(msg: Any, fld: FieldDescriptor, value: Any) -> None:
    if value is None:
        return
    target = getattr(msg, fld.name)
    if is_map(fld):
        for k, v in value.items():
            if fld.message_type.fields_by_name["value"].type == F.TYPE_MESSAGE:  # type: ignore[union-attr]
                target[k].CopyFrom(v)
            else:
                target[k] = v
    elif fld.is_repeated:
        if fld.type == F.TYPE_MESSAGE:
            for v in value:
                target.add().CopyFrom(v)
        else:
            target.extend(value)
    elif fld.type == F.TYPE_MESSAGE:
        target.CopyFrom(value)
    else:
        setattr(msg, fld.name, value)


_CAMEL = re.compile(r"_([a-z])")


def to_proto3(value: Any, desc: Descriptor) -> Any:
    """The contract's JSON for a message of desc as proto3 JSON: full enum names (deviation 4),
    lowerCamelCase FieldMask paths (deviation 2), 32-bit floats as strings (json_format in
    Python refuses a float number above FLT_MAX before rounding, so it cannot read its own
    3.4028235e+38; C++ and Go can)."""
    if desc.full_name == "google.protobuf.FieldMask" and isinstance(value, str):
        return ",".join(_CAMEL.sub(lambda m: m.group(1).upper(), p) for p in value.split(",") if p)
    if desc.full_name == "google.protobuf.FloatValue" and isinstance(value, float):
        return repr(value)
    if is_well_known(desc) or not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        fld = desc.fields_by_name[key]
        out[key] = _field_to_proto3(fld, item)
    return out


def _field_to_proto3(fld: FieldDescriptor, item: Any) -> Any:
    if item is None:
        return None
    if is_map(fld):
        value_fld = message_of(fld).fields_by_name["value"]
        return {k: _single_to_proto3(value_fld, v) for k, v in item.items()}
    if fld.is_repeated:
        return [_single_to_proto3(fld, v) for v in item]
    return _single_to_proto3(fld, item)


def _single_to_proto3(fld: FieldDescriptor, item: Any) -> Any:
    if fld.type == F.TYPE_MESSAGE:
        return to_proto3(item, message_of(fld))
    if fld.type == F.TYPE_ENUM and isinstance(item, str):
        enum = enum_of(fld)
        full = {enum_short_name(enum, v.number): v.name for v in enum.values}
        return full[item]
    if fld.type == F.TYPE_FLOAT and isinstance(item, float) and math.isfinite(item):
        return repr(item)
    return item
