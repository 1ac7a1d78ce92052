"""Named regression cases for values protobuf cannot hold exactly (each also a fuzz corpus file
under tests/fuzz/corpus/): accepted exactly as protobuf holds them, or refused with DecodeError.
"""

from __future__ import annotations

import math
import struct

import pytest
from google.protobuf import duration_pb2, field_mask_pb2, struct_pb2, wrappers_pb2
from google.protobuf.descriptor import FieldDescriptor

from rest_bridge import scalars
from rest_bridge.codec import Codec, DecodeError
from rest_bridge.request_mapping import parse_json
from rest_bridge.well_known import decode as decode_well_known

FLT_MAX = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]
FLOAT, DOUBLE = FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE


@pytest.mark.parametrize("literal", ["3.4028235e+38", "-3.4028235e+38", "3.40282356779733e38"])
def test_flt_max_as_printed_rounds_to_flt_max(literal: str) -> None:
    """FLT_MAX as protobuf and Go print it (and anything rounding to it) is FLT_MAX."""
    expected = math.copysign(FLT_MAX, float(literal))
    assert scalars.float_from_json(FLOAT, float(literal), "f") == expected
    assert scalars.float_from_text(FLOAT, literal, "f") == expected


def test_float_value_wrapper_accepts_flt_max() -> None:
    """regression-flt-max-wrapper: the FloatValue path rounds before it checks, like a float."""
    msg = wrappers_pb2.FloatValue()
    Codec().decode(3.4028235e38, msg, "w_float")
    assert msg.value == FLT_MAX


@pytest.mark.parametrize("value", [3.5e38, -1e39, 1.7976931348623157e308])
def test_float_that_would_become_infinity_is_refused(value: float) -> None:
    """regression-float-above-flt-max: a finite number never silently becomes Infinity."""
    with pytest.raises(DecodeError, match="32-bit float"):
        scalars.float_from_json(FLOAT, value, "f_float")
    with pytest.raises(DecodeError, match="32-bit float"):
        scalars.float_from_text(FLOAT, repr(value), "f_float")


def test_integer_beyond_any_double_is_refused() -> None:
    """regression-integer-beyond-double: float(10**400) raises OverflowError; it is a 422."""
    with pytest.raises(DecodeError, match="finite number"):
        scalars.float_from_json(DOUBLE, 10**400, "f_double")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param(b'{"x": 1e400}', "beyond the range of a double", id="literal-overflow"),
        pytest.param(b'{"x": NaN}', "NaN is not JSON", id="bare-nan"),
        pytest.param(b'{"x": [-Infinity]}', "-Infinity is not JSON", id="bare-minus-infinity"),
    ],
)
def test_json_numbers_python_would_bend_are_refused(body: bytes, problem: str) -> None:
    """regression-double-literal-overflow, regression-bare-nan: json.loads would make these
    floats that no JSON number means."""
    with pytest.raises(DecodeError, match=problem):
        parse_json(body)


def test_float32_written_as_its_shortest_decimal() -> None:
    """A 32-bit float is written as the shortest decimal that reads back to it, as protobuf."""
    tenth = struct.unpack("<f", struct.pack("<f", 0.1))[0]
    assert scalars.float32_to_json(tenth) == 0.1
    assert scalars.float32_to_json(FLT_MAX) == 3.4028235e38
    assert scalars.float32_to_json(-math.inf) == "-Infinity"


def test_value_null_reads_back_as_null_value() -> None:
    """regression-value-null: null in a google.protobuf.Value field is its null_value."""
    codec = Codec()
    msg = struct_pb2.Struct()
    decode_well_known({"n": None}, msg, msg.DESCRIPTOR)
    assert msg.fields["n"].WhichOneof("kind") == "null_value"
    assert codec.encode(msg) == {"n": None}


def test_camel_case_mask_paths_split_at_every_capital() -> None:
    """A lowerCamelCase FieldMask path turns each capital into _ + lower case, as protobuf."""
    mask = field_mask_pb2.FieldMask()
    Codec().decode("uuxsyjQG,displayName,a.bC", mask, "update_mask")
    assert list(mask.paths) == ["uuxsyj_q_g", "display_name", "a.b_c"]


@pytest.mark.parametrize("text", ["3155760003.4028235e+38000s", "1.5e999s", "-0.1e400s"])
def test_duration_with_an_overflowing_fraction_is_refused(text: str) -> None:
    """regression-duration-fraction-overflow (found by the codec fuzzer): json_format raised
    OverflowError for such a Duration, a 500; it is a DecodeError naming the field."""
    with pytest.raises(DecodeError, match=r"^within: must be a duration"):
        Codec().decode(text, duration_pb2.Duration(), "within")
