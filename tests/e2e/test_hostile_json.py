"""Request bodies that Python's json module accepts but the data model cannot hold, over a socket.

Each one used to answer 500: the bridge must refuse it with a 422 envelope and change nothing.
"""

from __future__ import annotations

import httpx
import pytest

from tests.e2e import Tokens, bearer

RESOURCES = b'"resources":{"limits":{"memory_mib":2},"requests":{"memory_mib":1,"vcpus":1}}'


def _body(name: bytes) -> bytes:
    return b'{"display_name":' + name + b"," + RESOURCES + b"}"


@pytest.mark.parametrize(
    ("body", "message_part"),
    [
        pytest.param(_body(b'"hostile-\\ud800"'), "lone surrogate", id="escaped-lone-surrogate"),
        pytest.param(_body(b'"hostile-\\udc00x"'), "lone surrogate", id="escaped-low-surrogate"),
        pytest.param(
            b'{"\\ud800":1,"display_name":"hostile-key",' + RESOURCES + b"}",
            "unknown field",
            id="surrogate-in-a-key",
        ),
        pytest.param(
            _body(b'"hostile-\xed\xa0\x80"'), "not valid JSON", id="surrogate-as-utf8-bytes"
        ),
        pytest.param(
            b'{"display_name":"hostile-dup","display_name":"hostile-dup2",' + RESOURCES + b"}",
            'duplicate key \\"display_name\\"',
            id="duplicate-key",
        ),
        pytest.param(
            b'{"display_name":"hostile-digits","resources":{"limits":{"memory_mib":'
            + b"9" * 5000
            + b"}}}",
            "not valid JSON",
            id="five-thousand-digits",
        ),
    ],
)
def test_unholdable_json_is_422_and_creates_nothing(
    http: httpx.Client, e2e_tokens: Tokens, body: bytes, message_part: str
) -> None:
    """Each body is refused with 422 invalid_argument naming the problem; no checkpoint appears."""
    headers = {**bearer(e2e_tokens.both), "Content-Type": "application/json"}
    response = http.post("/v1/checkpoints", content=body, headers=headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_argument"
    assert message_part in response.text, response.text
    for name in ("hostile-", "hostile-key", "hostile-dup", "hostile-dup2", "hostile-digits"):
        found = http.get(f"/v1/checkpoints/{name}", headers=bearer(e2e_tokens.read))
        assert found.status_code == 404, found.text
