"""GET /v1/checkpoints/{checkpoint_id} through the real bridge and server: statuses, lookups, JSON.

Each row of the contract's status table that GetCheckpoint can produce with a healthy upstream is
here; the upstream failures (429, 503, 504) are in test_upstream_failures.py.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.e2e import (
    ABOVE_DOUBLE,
    EXAMPLE_ID,
    HUGE_ID,
    LONGEST_NAME,
    MAX_INT64,
    MAX_UINT32,
    SPACED_ID,
    Tokens,
    bearer,
)

UNKNOWN_TOKEN = "ckpt_thisTokenWasNeverIssuedToAnyone0000000000"
INVALID_TOKEN = 'Bearer error="invalid_token"'


def auth_headers(kind: str, tokens: Tokens) -> list[tuple[str, str]]:
    """The Authorization header(s) a test case names by kind."""
    return {
        "none": [],
        "read": [("Authorization", f"Bearer {tokens.read}")],
        "write": [("Authorization", f"Bearer {tokens.write}")],
        "both": [("Authorization", f"Bearer {tokens.both}")],
        "unknown": [("Authorization", f"Bearer {UNKNOWN_TOKEN}")],
        "basic": [("Authorization", "Basic ZXhhbXBsZTpzZWNyZXQ=")],
        "bearer-only": [("Authorization", "Bearer")],
        "two-tokens": [
            ("Authorization", f"Bearer {tokens.read}"),
            ("Authorization", f"Bearer {tokens.both}"),
        ],
    }[kind]


@pytest.mark.parametrize(
    ("kind", "challenge"),
    [
        pytest.param("none", "Bearer", id="missing"),
        pytest.param("basic", INVALID_TOKEN, id="malformed-basic-scheme"),
        pytest.param("bearer-only", INVALID_TOKEN, id="malformed-no-token"),
        pytest.param("two-tokens", INVALID_TOKEN, id="malformed-two-headers"),
        pytest.param("unknown", INVALID_TOKEN, id="unknown-token"),
    ],
)
def test_unauthenticated_is_401_with_bearer_challenge(
    http: httpx.Client, e2e_tokens: Tokens, kind: str, challenge: str
) -> None:
    """A missing, malformed or unknown token is 401 unauthenticated with the right challenge."""
    response = http.get("/v1/checkpoints/example", headers=auth_headers(kind, e2e_tokens))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    assert response.headers["WWW-Authenticate"] == challenge


def test_write_only_token_is_403(http: httpx.Client, e2e_tokens: Tokens) -> None:
    """A known token without checkpoints:read is 403 permission_denied, not 401."""
    response = http.get("/v1/checkpoints/example", headers=bearer(e2e_tokens.write))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert "WWW-Authenticate" not in response.headers


@pytest.mark.parametrize("kind", ["read", "both"])
def test_tokens_with_read_scope_may_get(http: httpx.Client, e2e_tokens: Tokens, kind: str) -> None:
    """Both the read-only and the read-write token may read a checkpoint."""
    response = http.get("/v1/checkpoints/example", headers=auth_headers(kind, e2e_tokens))
    assert response.status_code == 200
    assert response.json()["data"]["id"] == EXAMPLE_ID


@pytest.mark.parametrize(
    ("segment", "looked_up"),
    [
        pytest.param("nope", "nope", id="unknown-name"),
        pytest.param(
            "00000000-0000-4000-8000-000000000000",
            "00000000-0000-4000-8000-000000000000",
            id="unknown-uuid",
        ),
        pytest.param("my%2520box", "my%20box", id="decoded-once-not-twice"),
        pytest.param("my+box", "my+box", id="plus-is-not-a-space"),
        pytest.param(
            "3f2b9c1e8a4d4c7b9e215d6f7a8b9c01",
            "3f2b9c1e8a4d4c7b9e215d6f7a8b9c01",
            id="uuid-without-hyphens-is-a-name",
        ),
        pytest.param("n" * 127, "n" * 127, id="127-characters"),
    ],
)
def test_not_found_is_404(
    http: httpx.Client, e2e_tokens: Tokens, segment: str, looked_up: str
) -> None:
    """A lookup that matches nothing is 404 not_found naming what was looked up."""
    response = http.get(f"/v1/checkpoints/{segment}", headers=bearer(e2e_tokens.read))
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert looked_up in error["message"]


@pytest.mark.parametrize(
    "segment",
    [
        pytest.param("n" * 129, id="over-long-129"),
        pytest.param("a%2Fb", id="encoded-slash"),
        pytest.param("a%2fb", id="encoded-slash-lowercase"),
        pytest.param("%2F", id="only-a-slash"),
        pytest.param("%20leading", id="leading-space"),
        pytest.param("trailing%20", id="trailing-space"),
        pytest.param("tab%09name", id="control-character"),
        pytest.param("%FF", id="not-utf8"),
    ],
)
def test_invalid_checkpoint_id_is_422(http: httpx.Client, e2e_tokens: Tokens, segment: str) -> None:
    """An id that can be neither a UUID nor a display name is 422 invalid_argument on that field."""
    response = http.get(f"/v1/checkpoints/{segment}", headers=bearer(e2e_tokens.read))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_argument"
    assert [d["field"] for d in error.get("details", [])] == ["checkpoint_id"]


@pytest.mark.parametrize(
    ("segment", "expected_id", "expected_name"),
    [
        pytest.param("example", EXAMPLE_ID, "example", id="display-name"),
        pytest.param(EXAMPLE_ID, EXAMPLE_ID, "example", id="uuid"),
        pytest.param(EXAMPLE_ID.upper(), EXAMPLE_ID, "example", id="uuid-upper-case"),
        pytest.param(
            "3F2b9C1e-8A4d-4C7b-9E21-5d6F7a8B9c01", EXAMPLE_ID, "example", id="uuid-mixed-case"
        ),
        pytest.param("my%20box", SPACED_ID, "my box", id="space-as-%20"),
        pytest.param(SPACED_ID.upper(), SPACED_ID, "my box", id="spaced-by-upper-uuid"),
        pytest.param("pct%2520name", None, "pct%20name", id="literal-percent-in-name"),
        pytest.param("caf%C3%A9", None, "café", id="utf8-name"),
        pytest.param(LONGEST_NAME, None, LONGEST_NAME, id="128-characters"),
    ],
)
def test_lookup_by_uuid_or_display_name(
    http: httpx.Client,
    e2e_tokens: Tokens,
    segment: str,
    expected_id: str | None,
    expected_name: str,
) -> None:
    """A UUID (any case) finds by id, anything else by exact display name, decoded once."""
    response = http.get(f"/v1/checkpoints/{segment}", headers=bearer(e2e_tokens.read))
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["display_name"] == expected_name
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", data["id"])
    if expected_id is not None:
        assert data["id"] == expected_id


def test_success_body_has_the_exact_contract_shape(http: httpx.Client, e2e_tokens: Tokens) -> None:
    """The 200 body is {"data": checkpoint} with proto field names and RFC 3339 UTC times."""
    response = http.get("/v1/checkpoints/example", headers=bearer(e2e_tokens.read))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    data = body["data"]
    assert {k: data[k] for k in ("id", "display_name", "resources", "state")} == {
        "id": EXAMPLE_ID,
        "display_name": "example",
        "resources": {"limits": {"memory_mib": 2048}, "requests": {"memory_mib": 1024, "vcpus": 2}},
        "state": "ready",
    }
    assert set(data) <= {
        "id",
        "display_name",
        "resources",
        "state",
        "create_time",
        "update_time",
        "etag",
    }
    assert data["create_time"] == "2026-01-15T10:00:00Z"
    assert data["update_time"] == "2026-01-15T10:05:00Z"
    assert isinstance(data["etag"], str)
    assert data["etag"]
    assert "displayName" not in response.text
    assert "memoryMib" not in response.text


def test_64_bit_integers_are_exact_json_numbers(http: httpx.Client, e2e_tokens: Tokens) -> None:
    """uint64 fields are JSON numbers (not strings), exact beyond 2**53; uint32 up to its max."""
    response = http.get(f"/v1/checkpoints/{HUGE_ID}", headers=bearer(e2e_tokens.read))
    assert response.status_code == 200
    assert re.search(rf'"memory_mib"\s*:\s*{MAX_INT64}\b', response.text), response.text
    assert re.search(rf'"memory_mib"\s*:\s*{ABOVE_DOUBLE}\b', response.text), response.text
    resources = response.json()["data"]["resources"]
    assert resources == {
        "limits": {"memory_mib": MAX_INT64},
        "requests": {"memory_mib": ABOVE_DOUBLE, "vcpus": MAX_UINT32},
    }
    assert all(
        type(v) is int for v in (*resources["limits"].values(), *resources["requests"].values())
    )


@pytest.mark.parametrize(
    ("segment", "state"),
    [
        pytest.param("example", "ready", id="ready"),
        pytest.param("my%20box", "creating", id="creating"),
        pytest.param("huge", "deleting", id="deleting"),
        pytest.param("pct%2520name", "failed", id="failed"),
    ],
)
def test_state_is_its_lowercase_short_name(
    http: httpx.Client, e2e_tokens: Tokens, segment: str, state: str
) -> None:
    """Each state is rendered as its lowercase name, without the CHECKPOINT_STATE_ prefix."""
    response = http.get(f"/v1/checkpoints/{segment}", headers=bearer(e2e_tokens.read))
    assert response.status_code == 200
    assert response.json()["data"]["state"] == state


@pytest.mark.parametrize(
    ("method", "path", "kind", "status"),
    [
        pytest.param("GET", "/v1/checkpoints/example", "read", 200, id="200"),
        pytest.param("GET", "/v1/checkpoints/nope", "read", 404, id="404"),
        pytest.param("GET", "/v1/checkpoints/example", "none", 401, id="401"),
        pytest.param("GET", "/v1/checkpoints/example", "write", 403, id="403"),
        pytest.param("GET", "/v1/checkpoints/a%2Fb", "read", 422, id="422"),
        pytest.param("PUT", "/v1/checkpoints/example", "read", 405, id="405"),
        pytest.param("GET", "/v2/nowhere", "read", 404, id="404-no-route"),
        pytest.param("GET", "/healthz", "none", 200, id="healthz"),
    ],
)
def test_x_request_id_is_echoed(
    http: httpx.Client, e2e_tokens: Tokens, *, method: str, path: str, kind: str, status: int
) -> None:
    """A caller's X-Request-Id comes back unchanged on successes and errors alike."""
    headers = [*auth_headers(kind, e2e_tokens), ("X-Request-Id", "req-4f1c.e2e:42")]
    response = http.request(method, path, headers=headers)
    assert response.status_code == status
    assert response.headers["X-Request-Id"] == "req-4f1c.e2e:42"


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        pytest.param("/v1/checkpoints/example", "read", id="200"),
        pytest.param("/v1/checkpoints/nope", "read", id="404"),
        pytest.param("/v1/checkpoints/example", "none", id="401"),
    ],
)
def test_x_request_id_is_generated_when_absent(
    http: httpx.Client, e2e_tokens: Tokens, path: str, kind: str
) -> None:
    """Without an X-Request-Id the bridge makes a fresh one for every response."""
    first = http.get(path, headers=auth_headers(kind, e2e_tokens)).headers.get("X-Request-Id")
    second = http.get(path, headers=auth_headers(kind, e2e_tokens)).headers.get("X-Request-Id")
    assert first
    assert second
    assert first != second


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        pytest.param("GET", "/v1/checkpoints/example", "read", id="200-read"),
        pytest.param("GET", "/v1/checkpoints/nope", "both", id="404-both"),
        pytest.param("GET", "/v1/checkpoints/example", "write", id="403-write"),
        pytest.param("GET", "/v1/checkpoints/example", "unknown", id="401-unknown"),
        pytest.param("GET", "/v1/checkpoints/example", "two-tokens", id="401-two-headers"),
        pytest.param("GET", "/v1/checkpoints/" + "x" * 129, "read", id="422-over-long"),
        pytest.param("GET", "/v1/checkpoints/example?token=1", "read", id="422-query"),
        pytest.param("DELETE", "/v1/checkpoints", "read", id="405"),
        pytest.param("GET", "/v1/checkpoints/example/", "read", id="404-trailing-slash"),
    ],
)
def test_authorization_is_never_echoed(
    http: httpx.Client, e2e_tokens: Tokens, method: str, path: str, kind: str
) -> None:
    """No response body or header ever contains the caller's token or Authorization header."""
    headers = auth_headers(kind, e2e_tokens)
    response = http.request(method, path, headers=headers)
    secrets = [value.split(" ", 1)[-1] for _, value in headers] + [UNKNOWN_TOKEN]
    for secret in secrets:
        assert secret not in response.text
        assert all(secret not in value for value in response.headers.values())
    assert "Bearer ckpt_" not in response.text
    assert "authorization" not in {name.lower() for name in response.headers}
