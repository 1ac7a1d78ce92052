"""Descriptor helpers the bridge's modules share: typed accessors, enum names, field lookup.

The one place that answers "which field does this name mean": a proto name (display_name) or
its JSON name (displayName), in that order of preference, for a single name or a dotted path.
Routes, request mapping, the codec and the OpenAPI generator all ask here, so a path variable,
a query parameter, a body key and a documented parameter can never disagree about a name.
"""

from __future__ import annotations

import re

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

_WORD_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def message_of(fld: FieldDescriptor) -> Descriptor:
    """The message type of a message-typed field.

    Raises:
        TypeError: the field is not message-typed.
    """
    if fld.message_type is None:
        raise TypeError(f"{fld.full_name} is not a message field")
    return fld.message_type


def enum_of(fld: FieldDescriptor) -> EnumDescriptor:
    """The enum type of an enum-typed field.

    Raises:
        TypeError: the field is not enum-typed.
    """
    if fld.enum_type is None:
        raise TypeError(f"{fld.full_name} is not an enum field")
    return fld.enum_type


def descriptor_of(msg: Message) -> Descriptor:
    """msg.DESCRIPTOR, typed: types-protobuf declares it as a union with the upb class."""
    return msg.DESCRIPTOR  # type: ignore[return-value]


def is_well_known(desc: Descriptor) -> bool:
    """True for google.protobuf types, which have their own JSON forms and are never walked."""
    return desc.full_name.startswith("google.protobuf.")


def is_map(fld: FieldDescriptor) -> bool:
    """True for map fields (a repeated message with the map_entry option)."""
    return fld.type == FieldDescriptor.TYPE_MESSAGE and message_of(fld).GetOptions().map_entry


def enum_prefix(enum: EnumDescriptor) -> str:
    """CheckpointState -> "CHECKPOINT_STATE_" (buf's ENUM_VALUE_PREFIX rule)."""
    return _WORD_BOUNDARY.sub("_", enum.name).upper() + "_"


def enum_short_name(enum: EnumDescriptor, number: int) -> str | None:
    """The contract's name of an enum value (CHECKPOINT_STATE_READY -> "ready"), or None."""
    value = enum.values_by_number.get(number)
    if value is None:
        return None
    return value.name.removeprefix(enum_prefix(enum)).lower()


def find_field(desc: Descriptor, name: str) -> FieldDescriptor | None:
    """The field of desc that name means: its proto name first, else its JSON name."""
    if not name.isascii() and not encodable(name):
        # upb's lookup fails on text UTF-8 cannot carry (a JSON key holding a lone surrogate);
        # no field has such a name.
        return None
    fld = desc.fields_by_name.get(name)
    if fld is not None:
        return fld
    for candidate in desc.fields:
        if candidate.json_name == name:
            return candidate
    return None


def resolve_path(desc: Descriptor, dotted: str) -> list[FieldDescriptor] | None:
    """The fields a dotted path walks through (each part a proto or JSON name), or None.

    Only message fields are walked into, and never a well-known type: their insides are not
    addressable by name in this API.
    """
    chain: list[FieldDescriptor] = []
    current: Descriptor | None = desc
    for part in dotted.split("."):
        if current is None or is_well_known(current):
            return None
        fld = find_field(current, part)
        if fld is None:
            return None
        chain.append(fld)
        current = fld.message_type if fld.type == FieldDescriptor.TYPE_MESSAGE else None
    return chain


def resolve_field(desc: Descriptor, dotted: str) -> FieldDescriptor | None:
    """The last field of resolve_path(desc, dotted), or None."""
    chain = resolve_path(desc, dotted)
    return chain[-1] if chain else None


def encodable(text: str) -> bool:
    """False when text holds a lone surrogate (a JSON "\\ud800" escape): no protobuf string or
    name can hold one, and UTF-8 cannot carry it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
