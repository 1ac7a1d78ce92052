"""The bridge's own answers: 404 and 405 routing, query and body validation, probes.

Expected routes are read from the google.api.http rules of the compiled descriptors, as the
bridge derives them, so a new method with a rule changes the expectations with it.
"""

from __future__ import annotations

import re

import httpx
import pytest
from checkpoint.v1 import checkpoint_service_pb2
from google.api import annotations_pb2, http_pb2

from tests.e2e import Tokens, bearer

CHECKPOINT_PATH = "/v1/checkpoints/{checkpoint_id}"
COLLECTION_PATH = "/v1/checkpoints"
ALL_METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH")


def http_rules() -> dict[str, set[str]]:
    """Path template -> HTTP methods, from the CheckpointService descriptors."""
    service = checkpoint_service_pb2.DESCRIPTOR.services_by_name["CheckpointService"]
    rules: dict[str, set[str]] = {}
    for method in service.methods:
        rule: http_pb2.HttpRule = method.GetOptions().Extensions[annotations_pb2.http]  # type: ignore[index]
        pattern = rule.WhichOneof("pattern")
        assert pattern is not None, f"{method.name} has no google.api.http rule"
        rules.setdefault(getattr(rule, pattern), set()).add(pattern.upper())
    return rules


def concrete(template: str) -> str:
    """A request path matching template: each {variable} becomes "example"."""
    return re.sub(r"\{[^}]*\}", "example", template)


def test_descriptors_have_the_contract_routes() -> None:
    """The proto declares the five AIP-131..135 routes the contract lists, and the watch."""
    assert http_rules() == {
        CHECKPOINT_PATH: {"GET", "PATCH", "DELETE"},
        COLLECTION_PATH: {"GET", "POST"},
        "/v1/checkpoints:watch": {"GET"},
    }


@pytest.mark.parametrize("template", [CHECKPOINT_PATH, COLLECTION_PATH])
def test_wrong_method_is_405_with_allow_listing_every_method(
    http: httpx.Client, e2e_tokens: Tokens, template: str
) -> None:
    """Every method a path does not serve is 405 unimplemented, Allow listing all it serves
    (HEAD with GET: it is served as the GET without a body)."""
    allowed = http_rules()[template] | {"HEAD"}
    for method in sorted(set(ALL_METHODS) - allowed):
        response = http.request(method, concrete(template), headers=bearer(e2e_tokens.both))
        assert response.status_code == 405, method
        assert response.json()["error"]["code"] == "unimplemented"
        assert {m.strip() for m in response.headers["Allow"].split(",")} == allowed


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json"])
def test_wrong_method_on_a_probe_is_405(http: httpx.Client, path: str) -> None:
    """The bridge's own paths are known paths too: POST on them is 405, Allow naming GET."""
    response = http.post(path)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "unimplemented"
    allowed = {m.strip() for m in response.headers.get("Allow", "").split(",")}
    assert "GET" in allowed
    assert allowed <= {"GET", "HEAD"}


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/", id="root"),
        pytest.param("/v2/checkpoints/example", id="other-version"),
        pytest.param("/v1/checkpoint/example", id="singular"),
        pytest.param("/V1/checkpoints/example", id="case-differs"),
        pytest.param("/v1/checkpoints/example/extra", id="extra-segment"),
        pytest.param("/v1/checkpoints/", id="empty-id"),
        pytest.param("/v1/checkpoints//", id="double-slash"),
        pytest.param("/v1//checkpoints/example", id="empty-segment"),
        pytest.param("/docs/", id="docs-slash"),
        pytest.param("/redoc", id="framework-redoc"),
    ],
)
def test_unknown_path_is_404(http: httpx.Client, e2e_tokens: Tokens, path: str) -> None:
    """A path no rule matches is 404 not_found in the error envelope."""
    response = http.get(path, headers=bearer(e2e_tokens.read))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "path",
    ["/v1/checkpoints/example/", "/v1/checkpoints/", "/healthz/", "/readyz/", "/openapi.json/"],
)
def test_trailing_slash_is_404_never_a_redirect(
    http: httpx.Client, e2e_tokens: Tokens, path: str
) -> None:
    """A trailing slash makes a different path: 404, with no Location to follow."""
    response = http.get(path, headers=bearer(e2e_tokens.read))
    assert response.status_code == 404
    assert "Location" not in response.headers
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param("foo=1", "foo", id="unknown"),
        pytest.param("page_size=10", "page_size", id="field-of-another-method"),
        pytest.param("checkpoint_id=other", "checkpoint_id", id="bound-by-the-path"),
        pytest.param("checkpointId=other", "checkpointId", id="bound-by-the-path-json-name"),
        pytest.param("access_token=abc", "access_token", id="token-in-query"),
    ],
)
def test_unknown_query_parameter_is_422(
    http: httpx.Client, e2e_tokens: Tokens, query: str, field: str
) -> None:
    """A query parameter the request cannot take is 422 invalid_argument naming it."""
    response = http.get(f"/v1/checkpoints/example?{query}", headers=bearer(e2e_tokens.read))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_argument"
    assert [d["field"] for d in error["details"]] == [field]


@pytest.mark.parametrize(
    ("method", "path", "headers", "content", "status"),
    [
        pytest.param("POST", "/v1/checkpoints", {}, b"{not json", 422, id="malformed-json"),
        pytest.param("POST", "/v1/checkpoints", {}, b"\xff\xfe", 422, id="body-not-utf8"),
        pytest.param(
            "POST", "/v1/checkpoints", {}, b'{"display_name": 7}', 422, id="wrong-json-type"
        ),
        pytest.param("POST", "/v1/checkpoints", {}, b'{"nope": 1}', 422, id="unknown-body-field"),
        pytest.param(
            "POST", "/v1/checkpoints", {}, b"[" * 2 + b"]" * 2, 422, id="body-not-an-object"
        ),
        pytest.param(
            "POST", "/v1/checkpoints", {}, b" " * (1 << 20) + b"{}", 413, id="body-over-limit"
        ),
        pytest.param(
            "GET", "/v1/checkpoints/example", {"Grpc-Timeout": "soon"}, b"", 422, id="bad-timeout"
        ),
        pytest.param("GET", "/v1/checkpoints/example?%FF=1", {}, b"", 422, id="query-not-utf8"),
        pytest.param("GET", "/v1/checkpoints/%FF", {}, b"", 422, id="path-not-utf8"),
    ],
)
def test_malformed_requests_get_the_error_envelope(
    http: httpx.Client,
    e2e_tokens: Tokens,
    *,
    method: str,
    path: str,
    headers: dict[str, str],
    content: bytes,
    status: int,
) -> None:
    """Malformed bodies, headers and encodings are invalid_argument envelopes, never "detail"."""
    response = http.request(
        method, path, headers={**bearer(e2e_tokens.both), **headers}, content=content
    )
    assert response.status_code == status
    body = response.json()
    assert "detail" not in body
    assert body["error"]["code"] == "invalid_argument"


def test_healthz_answers_without_a_token(http: httpx.Client) -> None:
    """GET /healthz needs no token and says the process is up."""
    response = http.get("/healthz")
    assert response.status_code == 200
    assert response.json()["data"]["status"] == "ok"


def test_readyz_answers_without_a_token_when_the_server_serves(http: httpx.Client) -> None:
    """GET /readyz needs no token and is 200 while the gRPC server is SERVING."""
    response = http.get("/readyz")
    assert response.status_code == 200
    assert response.json()["data"]["status"] == "serving"
