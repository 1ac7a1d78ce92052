"""Unit tests: JSON that json accepts but protobuf cannot hold is a DecodeError, not a crash."""

from __future__ import annotations

import pytest
from checkpoint.v1 import checkpoint_pb2 as pb

from rest_bridge.codec import Codec, DecodeError
from rest_bridge.descriptors import find_field
from rest_bridge.envelope import dumps
from rest_bridge.request_mapping import parse_json


@pytest.mark.parametrize(
    ("body", "message_part"),
    [
        pytest.param(b'{"a":1,"a":2}', 'duplicate key "a"', id="duplicate-top-level"),
        pytest.param(b'{"x":{"b":1,"b":1}}', 'duplicate key "b"', id="duplicate-nested-same-value"),
        pytest.param(
            b'{"\\ud800":1,"\\ud800":2}', 'duplicate key "\\ud800"', id="duplicate-surrogate"
        ),
        pytest.param(b"[" + b"1" * 5000 + b"]", "Exceeds the limit", id="integer-digit-limit"),
        pytest.param(b'"\xed\xa0\x80"', "can't decode", id="surrogate-utf8-bytes"),
        pytest.param(b'"\xff"', "can't decode", id="invalid-utf8"),
    ],
)
def test_parse_json_refuses(body: bytes, message_part: str) -> None:
    """parse_json raises DecodeError naming the problem for each body."""
    with pytest.raises(DecodeError) as caught:
        parse_json(body)
    assert message_part in str(caught.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(b'{"a":1,"b":[{"a":2}]}', {"a": 1, "b": [{"a": 2}]}, id="no-dups"),
        pytest.param('{"name":"café"}'.encode("utf-16"), {"name": "café"}, id="utf-16-bom"),
        pytest.param(b'{"s":"\\ud83d\\ude00"}', {"s": "\U0001f600"}, id="surrogate-pair-escape"),
    ],
)
def test_parse_json_accepts(body: bytes, expected: object) -> None:
    """Valid JSON, including a proper surrogate pair escape and UTF-16, parses as before."""
    assert parse_json(body) == expected


def test_lone_surrogate_in_a_string_field_is_a_decode_error() -> None:
    """A string value holding a lone surrogate names the field instead of failing in protobuf."""
    with pytest.raises(DecodeError) as caught:
        Codec().decode({"display_name": "x\ud800"}, pb.Checkpoint())
    assert caught.value.field == "display_name"
    assert "lone surrogate" in str(caught.value)


def test_surrogate_key_names_no_field() -> None:
    """find_field answers None for a name UTF-8 cannot carry (upb would raise SystemError)."""
    assert find_field(pb.Checkpoint.DESCRIPTOR, "\ud800") is None
    assert find_field(pb.Checkpoint.DESCRIPTOR, "displayName") is not None


def test_envelope_escapes_what_utf8_cannot_carry() -> None:
    """A message quoting a lone surrogate is written as a \\u escape; other text stays UTF-8."""
    assert dumps({"m": "x\ud800"}) == b'{"m":"x\\ud800"}'
    assert dumps({"m": "café"}) == '{"m":"café"}'.encode()
