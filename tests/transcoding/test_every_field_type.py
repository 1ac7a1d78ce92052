"""Every field type through the real bridge and echo server, over the socket: nothing is lost
or bent on the way in or out, and what protobuf cannot hold is a 422 in the envelope.

POST /v1/all takes a testing.v1.AllTypes as its body and the echo server sends it back, so the
response shows the request message the bridge built and how the bridge renders it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import Descriptor
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.e2e import check_envelope
from tests.transcoding.values import messages, to_proto3

FLT_MAX_TEXT = "3.4028235e+38"  # FLT_MAX as protobuf and Go print it


def _echo(client: httpx.Client, body: bytes | dict[str, Any]) -> httpx.Response:
    if isinstance(body, dict):
        return client.post("/v1/all", json=body)
    return client.post("/v1/all", content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize("sign", ["", "-"])
@pytest.mark.parametrize("field", ["w_float", "f_float", "r_float", "r_w_float"])
def test_flt_max_is_accepted_everywhere(echo_http: httpx.Client, field: str, sign: str) -> None:
    """FLT_MAX as printed by protobuf is held and printed back the same, in a FloatValue as in a
    plain, repeated or repeated-wrapper float."""
    literal = sign + FLT_MAX_TEXT
    value = f"[{literal}]" if field.startswith("r_") else literal
    response = _echo(echo_http, f'{{"{field}": {value}}}'.encode())
    assert response.status_code == 200, response.text
    assert json.dumps(response.json()["data"][field]) == value


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"f_float": 3.5e38}', id="plain-float-above-max"),
        pytest.param(b'{"f_float": -1e39}', id="plain-float-below-min"),
        pytest.param(b'{"w_float": 3.5e38}', id="wrapper-float-above-max"),
        pytest.param(b'{"r_float": [1, 1e39]}', id="repeated-float-above-max"),
        pytest.param(b'{"f_float": "1e39"}', id="float-string-above-max"),
        pytest.param(b'{"f_double": 1e400}', id="double-literal-overflow"),
        pytest.param(b'{"f_double": ' + b"9" * 400 + b"}", id="double-integer-overflow"),
        pytest.param(b'{"f_double": NaN}', id="bare-nan"),
        pytest.param(b'{"w_double": -Infinity}', id="bare-infinity"),
        pytest.param(b'{"f_int32": 2147483648}', id="int32-over"),
        pytest.param(b'{"w_uint32": -1}', id="uint32-wrapper-negative"),
        pytest.param(b'{"f_int64": 1.5}', id="int64-fraction"),
        pytest.param(b'{"m_int64_double": {"x": 1}}', id="map-key-not-integer"),
        pytest.param(b'{"f_enum": 2147483648}', id="enum-beyond-int32"),
        pytest.param(b'{"t_value": 1, "t_value": 2}', id="duplicate-key"),
    ],
)
def test_values_protobuf_cannot_hold_are_422(echo_http: httpx.Client, body: bytes) -> None:
    """A value that would change on its way into protobuf is refused with 422, never bent."""
    response = _echo(echo_http, body)
    assert response.status_code == 422, response.text
    check_envelope(response)
    assert response.json()["error"]["code"] == "invalid_argument"


def test_zero_enums_keep_lists_and_maps_whole(echo_http: httpx.Client) -> None:
    """[0, 2] stays two elements and an enum map value at 0 is a name, never null."""
    body = {"r_enum": [0, 2, "fiction", 0], "m_enum": {"a": 0, "b": "science_fiction"}}
    response = _echo(echo_http, body)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["r_enum"] == ["unspecified", "science_fiction", "fiction", "unspecified"]
    assert data["m_enum"] == {"a": "unspecified", "b": "science_fiction"}
    again = _echo(echo_http, {"r_enum": data["r_enum"], "m_enum": data["m_enum"]})
    assert again.json()["data"]["r_enum"] == data["r_enum"]
    assert again.json()["data"]["m_enum"] == data["m_enum"]


def test_unknown_open_enum_numbers_round_trip(echo_http: httpx.Client) -> None:
    """A number an open enum does not name is held and written back as that number."""
    response = _echo(echo_http, {"f_enum": 7, "r_enum": [9, 1], "m_enum": {"k": -3}})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["f_enum"], data["r_enum"], data["m_enum"]) == (7, [9, "fiction"], {"k": -3})


@pytest.fixture(scope="module")
def all_types(echo_descriptors: Path) -> Descriptor:
    files = descriptor_pb2.FileDescriptorSet.FromString(echo_descriptors.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file_proto in files.file:
        pool.Add(file_proto)
    return pool.FindMessageTypeByName("testing.v1.AllTypes")


@given(data=st.data())
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_random_messages_round_trip_over_the_socket(
    echo_http: httpx.Client, all_types: Descriptor, data: st.DataObject
) -> None:
    """protobuf's JSON of a random message goes in; what comes out reads back, with protobuf's
    own parser, to the same message."""
    msg = data.draw(messages(all_types))
    response = _echo(echo_http, json_format.MessageToJson(msg).encode())
    assert response.status_code == 200, response.text
    back = message_factory.GetMessageClass(all_types)()
    json_format.Parse(json.dumps(to_proto3(response.json()["data"], all_types)), back)
    mine = json_format.MessageToJson(msg, sort_keys=True)
    assert json_format.MessageToJson(back, sort_keys=True) == mine
