"""Unit tests of rest_bridge.codec: the contract's JSON mapping in both directions."""

from __future__ import annotations

import json
import math
from typing import Any, cast

import pytest
from checkpoint.v1 import checkpoint_pb2 as pb
from checkpoint.v1 import checkpoint_service_pb2 as svc
from google.protobuf import message, timestamp_pb2, wrappers_pb2
from google.protobuf.descriptor import EnumDescriptor

from rest_bridge.codec import Codec, DecodeError
from rest_bridge.descriptors import enum_prefix, enum_short_name
from tests.rest_bridge.protos import SCALARS, all_types_class

AllTypes = all_types_class()
U64_MAX = 2**64 - 1
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
I32_MIN, I32_MAX = -(2**31), 2**31 - 1
U32_MAX = 2**32 - 1
MEMORY = "resources.limits.memory_mib"


@pytest.fixture
def codec() -> Codec:
    """A fresh codec (encoders are compiled and cached per instance)."""
    return Codec()


def _wire(value: Any) -> Any:
    """value after a trip through JSON text, as a client would see it."""
    return json.loads(json.dumps(value))


def _round_trip(codec: Codec, msg: message.Message) -> message.Message:
    out = type(msg)()
    codec.decode(_wire(codec.encode(msg)), out)
    return out


# -- encoding ---------------------------------------------------------------------------------


def test_encode_zero_message_emits_every_scalar(codec: Codec) -> None:
    """Every scalar field is emitted with its zero value; the unspecified enum is omitted."""
    encoded = codec.encode(AllTypes())
    for name, _ in SCALARS:
        assert name in encoded
    assert encoded["f_uint64"] == 0
    assert encoded["f_string"] == ""
    assert encoded["f_bool"] is False
    assert encoded["f_bytes"] == ""
    assert "color" not in encoded
    assert encoded["inner"] == {"n": 0}
    assert (encoded["r_int64"], encoded["r_inner"], encoded["m"]) == ([], [], {})
    assert encoded["when"] is None
    assert "choice_a" not in encoded
    assert "maybe" not in encoded


def test_encode_checkpoint_contract_shape(codec: Codec) -> None:
    """A checkpoint encodes with proto field names, integer memory and a lowercase state."""
    msg = pb.Checkpoint(
        id="0b7e4c1a-3f2d-4e5a-9b8c-7d6e5f4a3b2c",
        display_name="example",
        resources=pb.Resources(
            limits=pb.ResourceLimits(memory_mib=2048),
            requests=pb.ResourceRequests(memory_mib=1024, vcpus=2),
        ),
        state=pb.CHECKPOINT_STATE_READY,
        create_time=timestamp_pb2.Timestamp(seconds=1769860800),
        etag="v1",
    )
    encoded = codec.encode(msg)
    assert encoded == {
        "id": "0b7e4c1a-3f2d-4e5a-9b8c-7d6e5f4a3b2c",
        "display_name": "example",
        "resources": {"limits": {"memory_mib": 2048}, "requests": {"memory_mib": 1024, "vcpus": 2}},
        "state": "ready",
        "create_time": "2026-01-31T12:00:00Z",
        "update_time": None,
        "etag": "v1",
    }


def test_encode_zero_checkpoint_keeps_the_four_fields(codec: Codec) -> None:
    """id, display_name and resources appear with zero values; state unspecified is not emitted."""
    encoded = codec.encode(pb.Checkpoint())
    assert encoded["id"] == ""
    assert encoded["display_name"] == ""
    assert encoded["resources"] == {
        "limits": {"memory_mib": 0},
        "requests": {"memory_mib": 0, "vcpus": 0},
    }
    assert "state" not in encoded


@pytest.mark.parametrize(
    ("number", "name"),
    [
        pytest.param(pb.CHECKPOINT_STATE_CREATING, "creating", id="creating"),
        pytest.param(pb.CHECKPOINT_STATE_READY, "ready", id="ready"),
        pytest.param(pb.CHECKPOINT_STATE_FAILED, "failed", id="failed"),
        pytest.param(pb.CHECKPOINT_STATE_DELETING, "deleting", id="deleting"),
    ],
)
def test_encode_states_lowercase(codec: Codec, number: int, name: str) -> None:
    """Each state is its lowercase value name without the CHECKPOINT_STATE_ prefix."""
    assert codec.encode(pb.Checkpoint(state=number))["state"] == name  # type: ignore[arg-type]


def test_encode_enum_multiword_and_repeated(codec: Codec) -> None:
    """Multi-word enum names stay snake_case; a zero in a list is written by its short name, so
    the list keeps its length (and reads back unchanged)."""
    msg: Any = AllTypes(color=2, r_color=[0, 1, 2, 0])
    encoded = codec.encode(msg)
    assert encoded["color"] == "dark_blue"
    assert encoded["r_color"] == ["unspecified", "red", "dark_blue", "unspecified"]
    back: Any = AllTypes()
    codec.decode(encoded, back)
    assert list(back.r_color) == [0, 1, 2, 0]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("f_int64", I64_MIN, id="int64-min"),
        pytest.param("f_int64", I64_MAX, id="int64-max"),
        pytest.param("f_uint64", U64_MAX, id="uint64-max"),
        pytest.param("f_fixed64", U64_MAX, id="fixed64-max"),
        pytest.param("f_sfixed64", I64_MIN, id="sfixed64-min"),
        pytest.param("f_sint64", I64_MAX, id="sint64-max"),
    ],
)
def test_encode_64_bit_as_json_numbers(codec: Codec, name: str, value: int) -> None:
    """64-bit integers are JSON numbers, exact at their extremes, never strings."""
    msg: Any = AllTypes()
    setattr(msg, name, value)
    text = json.dumps(codec.encode(msg))
    assert f'"{name}": {value}' in text
    assert json.loads(text)[name] == value


def test_round_trip_every_scalar_type(codec: Codec) -> None:
    """A message with every scalar type (extreme values), repeated, map and nested fields
    survives encode -> JSON text -> decode unchanged."""
    msg: Any = AllTypes(
        f_double=-1.5e300,
        f_float=0.5,
        f_int64=I64_MIN,
        f_uint64=U64_MAX,
        f_int32=I32_MIN,
        f_fixed64=U64_MAX,
        f_fixed32=U32_MAX,
        f_bool=True,
        f_string='caf\u00e9 \u2603 "quoted"',
        f_bytes=b"\x00\xff\xfe binary",
        f_uint32=U32_MAX,
        f_sfixed32=I32_MAX,
        f_sfixed64=I64_MAX,
        f_sint32=I32_MIN,
        f_sint64=I64_MIN,
        color=1,
        r_int64=[I64_MIN, 0, I64_MAX],
        r_color=[1, 2],
        choice_b=7,
        maybe=0,
    )
    msg.inner.n = -3
    msg.r_inner.add(n=1)
    msg.r_inner.add(n=2)
    msg.m["k"] = U64_MAX
    msg.m["other"] = 0
    msg.when.FromSeconds(1769860800)
    nested = msg.self
    nested.f_string = "nested"
    # Unset message fields render as their zero message (codec deviation 1), so a decoded
    # message has them present: mark it present here to compare like with like.
    nested.inner.SetInParent()
    assert _round_trip(codec, msg) == msg


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(math.nan, "NaN", id="nan"),
        pytest.param(math.inf, "Infinity", id="inf"),
        pytest.param(-math.inf, "-Infinity", id="minus-inf"),
    ],
)
def test_special_floats_round_trip(codec: Codec, value: float, text: str) -> None:
    """NaN and the infinities are the proto3 JSON strings and decode back."""
    msg: Any = AllTypes(f_double=value)
    encoded = codec.encode(msg)
    assert encoded["f_double"] == text
    out: Any = AllTypes()
    codec.decode(_wire(encoded), out)
    assert math.isnan(out.f_double) if math.isnan(value) else out.f_double == value


def test_proto3_optional_presence(codec: Codec) -> None:
    """A proto3 optional field is emitted when set, even to zero, and omitted when unset."""
    assert "maybe" not in codec.encode(AllTypes())
    assert codec.encode(AllTypes(maybe=0))["maybe"] == 0


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        pytest.param(wrappers_pb2.UInt64Value(value=U64_MAX), U64_MAX, id="uint64"),
        pytest.param(wrappers_pb2.Int64Value(value=I64_MIN), I64_MIN, id="int64"),
        pytest.param(wrappers_pb2.UInt32Value(value=U32_MAX), U32_MAX, id="uint32"),
        pytest.param(wrappers_pb2.Int32Value(value=-5), -5, id="int32"),
        pytest.param(wrappers_pb2.BoolValue(value=True), True, id="bool"),
        pytest.param(wrappers_pb2.StringValue(value="x"), "x", id="string"),
        pytest.param(wrappers_pb2.BytesValue(value=b"ab"), "YWI=", id="bytes"),
        pytest.param(wrappers_pb2.DoubleValue(value=1.5), 1.5, id="double"),
        pytest.param(
            timestamp_pb2.Timestamp(seconds=1769860800, nanos=5000),
            "2026-01-31T12:00:00.000005Z",
            id="timestamp-utc",
        ),
    ],
)
def test_well_known_types(codec: Codec, msg: message.Message, expected: object) -> None:
    """Wrappers encode as their bare value (64-bit ones as numbers), Timestamps as RFC 3339 Z,
    and both decode back."""
    encoded = codec.encode(msg)
    assert encoded == expected
    assert type(encoded) is type(expected)
    out = type(msg)()
    codec.decode(_wire(encoded), out)
    assert out == msg


def test_wrapper_decodes_numeric_string(codec: Codec) -> None:
    """A 64-bit wrapper accepts its value as a numeric string too."""
    out = wrappers_pb2.UInt64Value()
    codec.decode(str(U64_MAX), out)
    assert out.value == U64_MAX


@pytest.mark.parametrize(
    ("msg", "value", "problem"),
    [
        pytest.param(wrappers_pb2.UInt64Value(), -1, "must be an integer from 0 to", id="neg-u64"),
        pytest.param(timestamp_pb2.Timestamp(), "yesterday", "RFC 3339", id="bad-timestamp"),
    ],
)
def test_well_known_decode_errors(
    codec: Codec, msg: message.Message, value: object, problem: str
) -> None:
    """A bad well-known value is a DecodeError naming the field and the expected form."""
    with pytest.raises(DecodeError) as caught:
        codec.decode(value, msg, "x.when")
    assert str(caught.value).startswith("x.when: ")
    assert problem in str(caught.value)
    assert caught.value.field == "x.when"


# -- decoding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(2048, 2048, id="number"),
        pytest.param("2048", 2048, id="numeric-string"),
        pytest.param(str(U64_MAX), U64_MAX, id="max-as-string"),
        pytest.param(U64_MAX, U64_MAX, id="max-as-number"),
        pytest.param(0, 0, id="zero"),
        pytest.param(2048.0, 2048, id="integral-float"),
    ],
)
def test_decode_uint64_accepts(codec: Codec, value: object, expected: int) -> None:
    """A uint64 accepts a JSON number or a numeric string within range."""
    msg = pb.Checkpoint()
    codec.decode({"resources": {"limits": {"memory_mib": value}}}, msg)
    assert msg.resources.limits.memory_mib == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(-1, id="negative"),
        pytest.param("-1", id="negative-string"),
        pytest.param(U64_MAX + 1, id="over-range"),
        pytest.param(str(U64_MAX + 1), id="over-range-string"),
        pytest.param(1.5, id="fraction"),
        pytest.param("1.5", id="fraction-string"),
        pytest.param(1e30, id="huge-float"),
        pytest.param(True, id="bool"),
        pytest.param("", id="empty-string"),
        pytest.param(" 1", id="padded-string"),
        pytest.param("0x10", id="hex-string"),
        pytest.param([1], id="list"),
        pytest.param({"v": 1}, id="object"),
    ],
)
def test_decode_uint64_rejects(codec: Codec, value: object) -> None:
    """Out-of-range, negative, fractional, boolean or non-numeric values are refused,
    with a message naming the full field path."""
    with pytest.raises(DecodeError) as caught:
        codec.decode({"resources": {"limits": {"memory_mib": value}}}, pb.Checkpoint())
    assert str(caught.value) == f"{MEMORY}: must be an integer from 0 to {U64_MAX}"
    assert caught.value.field == MEMORY


def test_decode_path_prefix_names_the_field(codec: Codec) -> None:
    """With a path prefix, the error names the field under it."""
    with pytest.raises(DecodeError, match=r"^checkpoint\.resources\.requests\.vcpus: "):
        codec.decode({"resources": {"requests": {"vcpus": -1}}}, pb.Checkpoint(), "checkpoint")


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        pytest.param("f_uint32", U32_MAX + 1, f"from 0 to {U32_MAX}", id="uint32-over"),
        pytest.param("f_int32", I32_MAX + 1, f"from {I32_MIN} to {I32_MAX}", id="int32-over"),
        pytest.param("f_int32", I32_MIN - 1, f"from {I32_MIN} to {I32_MAX}", id="int32-under"),
        pytest.param("f_int64", str(I64_MAX + 1), f"to {I64_MAX}", id="int64-over"),
        pytest.param("f_bool", "true", "must be true or false", id="bool-as-string"),
        pytest.param("f_bool", 1, "must be true or false", id="bool-as-number"),
        pytest.param("f_string", 5, "must be a string", id="string-as-number"),
        pytest.param("f_double", True, "must be a number", id="double-as-bool"),
        pytest.param("f_double", "abc", "must be a number", id="double-bad-string"),
        pytest.param("f_bytes", "!!", "must be base64", id="bytes-not-base64"),
        pytest.param("color", "purple", "must be one of red, dark_blue", id="enum-unknown"),
        pytest.param("color", True, "must be a string", id="enum-bool"),
        pytest.param("inner", 5, "must be a JSON object", id="message-not-object"),
        pytest.param("r_int64", 5, "must be a JSON array", id="repeated-not-list"),
        pytest.param("m", [1], "must be a JSON object", id="map-not-object"),
    ],
)
def test_decode_type_errors(codec: Codec, name: str, value: object, problem: str) -> None:
    """A value of the wrong JSON type or range is refused naming the field and the rule."""
    with pytest.raises(DecodeError) as caught:
        codec.decode({name: value}, AllTypes())
    assert str(caught.value).startswith(f"{name}: ")
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"r_int64": [1, "x"]}, "r_int64[1]", id="repeated-element"),
        pytest.param({"m": {"k": -1}}, "m[k]", id="map-value"),
        pytest.param({"r_inner": [{"n": 1}, {"n": "x"}]}, "r_inner[1].n", id="repeated-message"),
        pytest.param({"inner": {"bogus": 1}}, "inner.bogus", id="nested-unknown"),
    ],
)
def test_decode_error_paths_index_containers(
    codec: Codec, body: dict[str, object], field: str
) -> None:
    """Errors inside lists and maps name the element by index or key."""
    with pytest.raises(DecodeError) as caught:
        codec.decode(body, AllTypes())
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("value", "number"),
    [
        pytest.param("ready", pb.CHECKPOINT_STATE_READY, id="short-name"),
        pytest.param("CHECKPOINT_STATE_FAILED", pb.CHECKPOINT_STATE_FAILED, id="full-name"),
        pytest.param(4, pb.CHECKPOINT_STATE_DELETING, id="number"),
        pytest.param("1", pb.CHECKPOINT_STATE_CREATING, id="number-as-string"),
    ],
)
def test_decode_enum_forms(codec: Codec, value: object, number: int) -> None:
    """An enum accepts its short lowercase name, its full name or its number."""
    msg = pb.Checkpoint()
    codec.decode({"state": value}, msg)
    assert msg.state == number


@pytest.mark.parametrize("value", ["unspecified", "UNSPECIFIED", "checkpoint_state_unspecified"])
def test_decode_enum_zero_by_its_short_name(codec: Codec, value: str) -> None:
    """The zero value's short name, which lists and maps are written with, reads back as 0."""
    msg = pb.Checkpoint(state=pb.CHECKPOINT_STATE_READY)
    codec.decode({"state": value}, msg)
    assert msg.state == pb.CHECKPOINT_STATE_UNSPECIFIED


@pytest.mark.parametrize("value", ["READY", "Ready", "checkpoint_state_ready"])
def test_decode_enum_name_in_any_case(codec: Codec, value: str) -> None:
    """Enum names are accepted in any letter case (input is lenient; output is lowercase)."""
    msg = pb.Checkpoint()
    codec.decode({"state": value}, msg)
    assert msg.state == pb.CHECKPOINT_STATE_READY


@pytest.mark.parametrize("value", ["ready!", "rea dy", "purple", "1.5"])
def test_decode_enum_unknown_name(codec: Codec, value: str) -> None:
    """A name that is no value lists the allowed names (the zero value's is not advertised)."""
    with pytest.raises(DecodeError) as caught:
        codec.decode({"state": value}, pb.Checkpoint())
    assert str(caught.value) == "state: must be one of creating, ready, failed, deleting"


def test_decode_unknown_field(codec: Codec) -> None:
    """An unknown key is refused naming it."""
    with pytest.raises(DecodeError) as caught:
        codec.decode({"display_name": "x", "colour": "red"}, pb.Checkpoint())
    assert str(caught.value) == "colour: unknown field"
    assert caught.value.field == "colour"


def test_decode_null_is_ignored(codec: Codec) -> None:
    """null leaves a field at its default, for scalars, enums and messages alike."""
    msg = pb.Checkpoint()
    codec.decode({"display_name": None, "state": None, "resources": None, "create_time": None}, msg)
    assert msg == pb.Checkpoint()
    assert not msg.HasField("resources")


def test_decode_accepts_json_names(codec: Codec) -> None:
    """lowerCamelCase JSON names are accepted on input like proto names."""
    msg = pb.Checkpoint()
    codec.decode({"displayName": "box", "resources": {"limits": {"memoryMib": 5}}}, msg)
    assert (msg.display_name, msg.resources.limits.memory_mib) == ("box", 5)


def test_decode_empty_object_sets_message_presence(codec: Codec) -> None:
    """{} for a message field marks it present (its zero value)."""
    msg = svc.UpdateCheckpointRequest()
    codec.decode({"checkpoint": {}}, msg)
    assert msg.HasField("checkpoint")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param([], id="list"),
        pytest.param("x", id="string"),
        pytest.param(1, id="number"),
    ],
)
def test_decode_body_must_be_object(codec: Codec, body: object) -> None:
    """A body that is not a JSON object is refused as "request body"."""
    with pytest.raises(DecodeError, match=r"^request body: must be a JSON object$"):
        codec.decode(body, pb.Checkpoint())


def test_decode_oneof_twice(codec: Codec) -> None:
    """Setting two members of one oneof is refused naming both."""
    with pytest.raises(DecodeError, match="only one of choice_a and choice_b"):
        codec.decode({"choice_a": "x", "choice_b": 1}, AllTypes())


@pytest.mark.parametrize(
    ("text", "raw"),
    [
        pytest.param("/wA=", b"\xff\x00", id="standard"),
        pytest.param("_wA", b"\xff\x00", id="url-safe-unpadded"),
    ],
)
def test_decode_bytes_base64_forms(codec: Codec, text: str, raw: bytes) -> None:
    """bytes accept standard and URL-safe base64, padded or not."""
    msg: Any = AllTypes()
    codec.decode({"f_bytes": text}, msg)
    assert msg.f_bytes == raw


def test_decode_too_deep_is_decode_error(codec: Codec) -> None:
    """Absurdly deep nesting is a DecodeError, not a RecursionError."""
    body: dict[str, Any] = {}
    for _ in range(5000):
        body = {"self": body}
    with pytest.raises(DecodeError, match="nested too deeply"):
        codec.decode(body, AllTypes())


@pytest.mark.parametrize(
    ("enum_name", "prefix", "first"),
    [
        pytest.param("CheckpointState", "CHECKPOINT_STATE_", "creating", id="two-words"),
        pytest.param("Color", "COLOR_", "red", id="one-word"),
    ],
)
def test_enum_prefix(enum_name: str, prefix: str, first: str) -> None:
    """The value prefix is the enum name in UPPER_SNAKE_CASE plus an underscore."""
    files = {"CheckpointState": pb.DESCRIPTOR, "Color": AllTypes.DESCRIPTOR.file}
    enum = cast(EnumDescriptor, files[enum_name].enum_types_by_name[enum_name])
    assert enum_prefix(enum) == prefix
    assert enum_short_name(enum, 1) == first
    assert enum_short_name(enum, 99) is None


def test_timestamps_are_json_formats_across_the_range() -> None:
    """The codec's Timestamp text is json_format's for every second of the range (first and
    last day, before and after the epoch, leap days) and every fraction width, however many
    distinct days have been written before (the day cache is bounded)."""
    import random

    rng = random.Random(12)
    first, last = -62135596800, 253402300799  # 0001-01-01T00:00:00Z, 9999-12-31T23:59:59Z
    seconds = [first, last, -1, 0, 1, 951782400, 951868799, 4107542400, 1769860800]
    seconds += [rng.randint(first, last) for _ in range(6000)]
    nanos = [0, 1, 999_999_999, 5_000, 120_000_000, 123_456_000, 7]
    codec = Codec()
    for index, second in enumerate(seconds):
        ts = timestamp_pb2.Timestamp(seconds=second, nanos=nanos[index % len(nanos)])
        assert codec.encode(ts) == ts.ToJsonString(), ts


def test_descriptor_tables_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The by-descriptor look-ups forget everything when full and still answer the same."""
    import rest_bridge.codec

    monkeypatch.setattr(rest_bridge.codec, "_MAX_DESCRIPTORS", 2)
    codec = Codec()
    ts = timestamp_pb2.Timestamp(seconds=1769860800)
    wrapped = wrappers_pb2.Int64Value(value=7)
    checkpoint = pb.Checkpoint(id="x")
    for _ in range(3):
        assert codec.encode(ts) == "2026-01-31T12:00:00Z"
        assert codec.encode(wrapped) == 7
        assert codec.encode(checkpoint)["id"] == "x"
        assert codec.float_free(ts.DESCRIPTOR)
        assert codec.float_free(checkpoint.DESCRIPTOR)
        assert not codec.float_free(wrappers_pb2.DoubleValue.DESCRIPTOR)
    assert len(codec._by_descriptor) <= 2
