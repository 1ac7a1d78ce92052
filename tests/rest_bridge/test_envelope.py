"""Unit tests of rest_bridge.envelope: the one JSON writer of success and error bodies."""

from __future__ import annotations

import json

import grpc
import pytest

from rest_bridge.envelope import data_body, dumps
from rest_bridge.status import ApiError

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
