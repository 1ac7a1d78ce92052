"""Unit tests of rest_bridge.envelope: the one JSON writer of success and error bodies."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from checkpoint.v1 import checkpoint_pb2, checkpoint_service_pb2
from google.protobuf import any_pb2, struct_pb2, timestamp_pb2, wrappers_pb2
from google.protobuf.descriptor import Descriptor
from hypothesis import given, settings
from hypothesis import strategies as st

from rest_bridge.codec import Codec
from rest_bridge.envelope import data_body, dumps
from rest_bridge.status import ApiError
from tests.rest_bridge.protos import all_types_class

VALUES = [
    pytest.param({"status": "ok"}, id="probe"),
    pytest.param({"display_name": "caf\u00e9 \u2603", "n": 2**64 - 1, "x": None}, id="unicode"),
    pytest.param({"nested": {"a": [1, 2.5, True]}, "empty": {}}, id="nested"),
]


@pytest.mark.parametrize("data", VALUES)
def test_data_body_is_compact_utf8(data: object) -> None:
    """{"data": ...} in compact separators with UTF-8 text unescaped, as the bridge always wrote."""
    expected = json.dumps({"data": data}, ensure_ascii=False, separators=(",", ":")).encode()
    assert data_body(data) == expected


def test_ascii_probe_body_is_unchanged() -> None:
    """For ASCII values the bytes equal the probes' former writer (which escaped non-ASCII)."""
    data = {"status": "serving"}
    assert data_body(data) == json.dumps({"data": data}, separators=(",", ":")).encode()
    assert data_body(data) == b'{"data":{"status":"serving"}}'


def test_error_body_uses_the_same_writer() -> None:
    """ApiError.render writes its envelope with the same settings."""
    error = ApiError(grpc.StatusCode.NOT_FOUND, 'checkpoint "caf\u00e9" not found')
    _, body = error.render()
    assert body == dumps(error.envelope())
    expected = '{"error":{"code":"not_found","message":"checkpoint \\"caf\u00e9\\" not found"}}'
    assert body == expected.encode()


def test_dumps_refuses_what_json_cannot_hold() -> None:
    """A value JSON cannot represent is a TypeError, which render turns into the fallback body."""
    with pytest.raises(TypeError):
        dumps({"x": object()})


# Every JSON value but floats: text over all of Unicode (lone surrogates included), integers
# past 64 bits either way, and nesting.
_FLOAT_FREE_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.text(st.characters(codec=None, min_codepoint=0)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(_FLOAT_FREE_JSON)
def test_float_free_bodies_are_the_same_bytes(data: Any) -> None:
    """The orjson path writes what the json path writes, for every value it may be given."""
    assert data_body(data, float_free=True) == data_body(data)


def test_floats_are_why_the_orjson_path_is_kept_from_them() -> None:
    """The one difference: json writes 1e-05 where orjson writes 1e-5."""
    assert data_body({"x": 1e-05}) == b'{"data":{"x":1e-05}}'


@pytest.mark.parametrize(
    ("desc", "free"),
    [
        (checkpoint_service_pb2.GetCheckpointResponse.DESCRIPTOR, True),
        (checkpoint_service_pb2.ListCheckpointsResponse.DESCRIPTOR, True),
        (checkpoint_pb2.Checkpoint.DESCRIPTOR, True),
        (timestamp_pb2.Timestamp.DESCRIPTOR, True),
        (wrappers_pb2.Int64Value.DESCRIPTOR, True),
        (wrappers_pb2.DoubleValue.DESCRIPTOR, False),
        (wrappers_pb2.FloatValue.DESCRIPTOR, False),
        (struct_pb2.Struct.DESCRIPTOR, False),
        (struct_pb2.Value.DESCRIPTOR, False),
        (any_pb2.Any.DESCRIPTOR, False),
        (all_types_class().DESCRIPTOR, False),  # f_double, and a recursive field
        (all_types_class().DESCRIPTOR.fields_by_name["inner"].message_type, True),
    ],
    ids=lambda v: v.full_name if isinstance(v, Descriptor) else str(v),
)
def test_float_free_types(desc: Descriptor, free: bool) -> None:
    """Only types whose JSON cannot hold a float, however deep, are float-free."""
    assert Codec().float_free(desc) is free
