"""The bridge's codec against google.protobuf.json_format, on random messages of every field type.

Both directions, modulo the contract's four documented deviations (rest_bridge/codec.py):
whatever json_format writes for a message, the bridge reads back to the same message; whatever
the bridge writes, json_format reads back to the same message (after tests.transcoding.values
undoes deviations 2 and 4). A value protobuf cannot hold is refused by the bridge with a
DecodeError (a 422), where json_format either refuses it too or bends it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from rest_bridge.codec import Codec, DecodeError
from rest_bridge.request_mapping import parse_json
from tests.transcoding.values import messages, to_proto3

PROPERTY = settings(
    max_examples=25,
    deadline=None,
    # No shrinking: a message of every field type shrinks for minutes; the failing JSON text
    # is in the assertion message instead.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def all_types(echo_descriptors: Path) -> Descriptor:
    """testing.v1.AllTypes from the echo proto, in a pool of its own."""
    files = descriptor_pb2.FileDescriptorSet.FromString(echo_descriptors.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file_proto in files.file:
        pool.Add(file_proto)
    return pool.FindMessageTypeByName("testing.v1.AllTypes")


def _same(a: Message, b: Message) -> bool:
    """Equal canonical JSON (map order aside, -0.0 and NaN exactly): message == would call NaN
    unequal to itself, and serialized bytes depend on map order."""
    return bool(
        json_format.MessageToJson(a, sort_keys=True) == json_format.MessageToJson(b, sort_keys=True)
    )


def _diff(a: Message, b: Message) -> str:
    """The fields whose encodings differ, with both values: the assertion message."""
    lines = []
    for fld in a.DESCRIPTOR.fields:
        x, y = getattr(a, fld.name), getattr(b, fld.name)
        if str(x) != str(y):
            lines.append(f"{fld.name}: {str(x)[:300]!r} != {str(y)[:300]!r}")
    return "\n".join(lines)


def _new(desc: Descriptor) -> Message:
    return message_factory.GetMessageClass(desc)()


@given(data=st.data())
@PROPERTY
def test_the_bridge_reads_what_protobuf_writes(all_types: Descriptor, data: st.DataObject) -> None:
    """json_format's JSON of any message (camelCase or proto names) decodes to the same message."""
    msg = data.draw(messages(all_types))
    codec = Codec()
    for proto_names in (False, True):
        text = json_format.MessageToJson(msg, preserving_proto_field_name=proto_names)
        out = _new(all_types)
        codec.decode(parse_json(text.encode()), out)
        assert _same(out, msg), _diff(out, msg)


@given(data=st.data())
@PROPERTY
def test_protobuf_reads_what_the_bridge_writes(all_types: Descriptor, data: st.DataObject) -> None:
    """The bridge's JSON of any message, sent as text, reads back to the same message with
    json_format and with the bridge itself."""
    msg = data.draw(messages(all_types))
    codec = Codec()
    text = json.dumps(codec.encode(msg))
    theirs = _new(all_types)
    json_format.Parse(json.dumps(to_proto3(json.loads(text), all_types)), theirs)
    assert _same(theirs, msg), _diff(theirs, msg)
    ours = _new(all_types)
    codec.decode(parse_json(text.encode()), ours)
    assert _same(ours, msg), _diff(ours, msg)


NUMERIC_FIELDS = [
    "f_int32", "f_uint32", "f_int64", "f_uint64", "f_sint32", "f_fixed32", "f_sfixed64",
    "f_float", "f_double", "w_float", "w_double", "w_int32", "w_uint64",
]  # fmt: skip
FLT_MAX = 3.4028234663852886e38
FLT_ROUNDS_TO_MAX = 3.4028235677973366e38  # half-way to 2**128: below it rounds to FLT_MAX


def _numbers() -> st.SearchStrategy[str]:
    """JSON number literals: integers of any length, decimals, exponents, float32 edges."""
    ints = st.integers(-(2**70), 2**70) | st.integers().map(lambda n: n * 10**30)
    floats = st.floats(allow_nan=False, allow_infinity=False).map(repr)
    edges = st.sampled_from(
        ["3.4028235e+38", "-3.4028235e+38", "3.5e38", "1e39", "1e400", "-1e400", "1e-50",
         "4294967296", "2147483648", "-2147483649", "18446744073709551616", "1.0", "1.5",
         "9223372036854775807", "-9223372036854775808", "1e2", "2e19"]
    )  # fmt: skip
    return ints.map(str) | floats | edges


def _json_format_value(desc: Descriptor, field: str, literal: str) -> Any:
    """What json_format makes of {field: literal}: the value held, or None for a refusal."""
    msg: Any = _new(desc)
    try:
        json_format.Parse(f'{{"{field}": {literal}}}', msg)
    except (json_format.ParseError, ValueError, OverflowError):
        return None
    value = getattr(msg, field)
    return value.value if hasattr(value, "value") else value


@given(field=st.sampled_from(NUMERIC_FIELDS), literal=_numbers())
@settings(PROPERTY, max_examples=500)
def test_numbers_are_held_exactly_or_refused(
    all_types: Descriptor, field: str, literal: str
) -> None:
    """A JSON number is accepted exactly when protobuf holds it without becoming Infinity or
    wrapping, with json_format's value; else DecodeError (422)."""
    ours: Any = _new(all_types)
    try:
        Codec().decode(parse_json(f'{{"{field}": {literal}}}'.encode()), ours)
    except DecodeError:
        accepted = None
    else:
        value = getattr(ours, field)
        accepted = value.value if hasattr(value, "value") else value
    theirs = _json_format_value(all_types, field, literal)
    if accepted is not None:
        assert math.isfinite(accepted)
    number = float(literal)
    if field.endswith("float") and FLT_MAX < abs(number) < FLT_ROUNDS_TO_MAX:
        # json_format (Python) refuses these before rounding; protobuf C++ and Go, and the
        # bridge, round them to FLT_MAX, the value they print as 3.4028235e+38.
        assert accepted == math.copysign(FLT_MAX, number)
        return
    if theirs is not None and not math.isfinite(theirs):
        theirs = None  # json_format bends a too-large plain float into Infinity; refused here
    assert accepted == theirs
