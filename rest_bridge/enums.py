"""Enum values as the contract names them, both ways, with lookup tables built once per enum.

Output is the lowercase short name (CHECKPOINT_STATE_READY -> "ready"); a number the enum does
not define (proto3 enums are open) is written as the number. The zero value's short name
("unspecified") is written wherever a value must be (a list element, a map value), so a list
never changes length; a singular field at zero is simply left out (codec deviation 4). Input
accepts the short name, the full name, either in any letter case, or the number; an open enum
also accepts a number it does not define, as protobuf's JSON parser does.
"""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor

from rest_bridge.descriptors import enum_short_name
from rest_bridge.scalars import INT_RANGES, INTEGER, DecodeError

_INT32 = INT_RANGES[FieldDescriptor.TYPE_INT32]  # enum numbers are int32


class EnumNames:
    def __init__(self) -> None:
        self._inputs: dict[str, dict[str, int]] = {}
        self._outputs: dict[str, Callable[[int], str | int]] = {}

    def writer(self, enum: EnumDescriptor) -> Callable[[int], str | int]:
        """The function that writes a number of enum as JSON: its short name, else the number."""
        found = self._outputs.get(enum.full_name)
        if found is None:
            names = {v.number: enum_short_name(enum, v.number) or v.name for v in enum.values}
            found = self._outputs[enum.full_name] = lambda number: names.get(number, number)
        return found

    def number(self, enum: EnumDescriptor, text: str, path: str) -> int:
        """The number for an enum given by short name, full name or number.

        Raises:
            DecodeError: no such value.
        """
        inputs = self._inputs.get(enum.full_name)
        if inputs is None:
            inputs = {}
            for v in enum.values:
                inputs[v.name] = v.number
                inputs[str(v.number)] = v.number
                short = enum_short_name(enum, v.number)
                if short is not None:
                    inputs.setdefault(short, v.number)
            self._inputs[enum.full_name] = inputs
        # Names in another letter case ("READY", "Ready") are accepted too: input is lenient.
        number = inputs.get(text)
        if number is None:
            number = inputs.get(text.lower(), inputs.get(text.upper()))
        if number is not None:
            return number
        if not enum.is_closed and INTEGER.fullmatch(text):
            low, high = _INT32
            if low <= int(text) <= high:
                return int(text)
        allowed = ", ".join(
            n for v in enum.values if v.number != 0 and (n := enum_short_name(enum, v.number))
        )
        where = path or "request body"
        raise DecodeError(f"{where}: must be one of {allowed}", path)
