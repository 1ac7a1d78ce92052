"""GET /openapi.json: a valid OpenAPI document that matches the routes and the real responses."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from tests.e2e import Tokens, bearer

GET_PATH = "/v1/checkpoints/{checkpoint_id}"
# The statuses and descriptions the seed page documents for GET /v1/checkpoints/{checkpoint_id}.
SEED_RESPONSES = {
    "401": "Missing, malformed, or rejected bearer token",
    "403": "The bearer token is not allowed to perform this action",
    "404": "The requested resource was not found",
    "409": "The request conflicts with current resource state",
    "422": "Validation or application error",
    "429": "Rate limit exceeded",
    "503": "Upstream service is unavailable",
    "504": "Upstream request timed out",
    "default": "Error response",
}


@pytest.fixture(scope="module")
def spec(http: httpx.Client) -> dict[str, Any]:
    """The bridge's OpenAPI document, fetched without a token."""
    response = http.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def response_schema(spec: dict[str, Any], status: str) -> dict[str, Any]:
    """The JSON schema of one documented response of GET_PATH, with components to resolve refs."""
    content = spec["paths"][GET_PATH]["get"]["responses"][status]["content"]
    return {**content["application/json"]["schema"], "components": spec["components"]}


def test_openapi_document_is_valid(spec: dict[str, Any]) -> None:
    """The document passes openapi-spec-validator."""
    validate(spec)
    assert spec["openapi"].startswith("3.")


def test_every_http_rule_is_an_operation(spec: dict[str, Any]) -> None:
    """Each google.api.http rule of the proto appears as a path and method, described."""
    operations = {
        (path, method.upper()): op
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in ("get", "put", "post", "delete", "patch")
    }
    for key in [
        (GET_PATH, "GET"),
        (GET_PATH, "PATCH"),
        (GET_PATH, "DELETE"),
        ("/v1/checkpoints", "GET"),
        ("/v1/checkpoints", "POST"),
    ]:
        assert key in operations, key
        assert operations[key].get("description") or operations[key].get("summary"), key


def test_get_checkpoint_documents_every_status(spec: dict[str, Any]) -> None:
    """GET /v1/checkpoints/{checkpoint_id} documents 200 and the seed page's error statuses."""
    operation = spec["paths"][GET_PATH]["get"]
    responses = operation["responses"]
    assert set(SEED_RESPONSES) | {"200"} <= set(responses)
    for status, description in SEED_RESPONSES.items():
        assert responses[status]["description"] == description, status
        assert "application/json" in responses[status]["content"], status
    assert "Get checkpoint metadata by UUID or display name." in (
        operation.get("description", "") + operation.get("summary", "")
    )
    (parameter,) = [p for p in operation["parameters"] if p["in"] == "path"]
    assert parameter["name"] == "checkpoint_id"
    assert parameter["required"] is True
    assert parameter["description"] == "Checkpoint UUID or display name."


def test_documented_schemas_accept_the_real_responses(
    spec: dict[str, Any], http: httpx.Client, e2e_tokens: Tokens
) -> None:
    """Real 200, 401, 403, 404 and 422 bodies validate against the documented schemas."""
    cases = [
        ("200", "/v1/checkpoints/example", bearer(e2e_tokens.read)),
        ("401", "/v1/checkpoints/example", {}),
        ("403", "/v1/checkpoints/example", bearer(e2e_tokens.write)),
        ("404", "/v1/checkpoints/nope", bearer(e2e_tokens.read)),
        ("422", "/v1/checkpoints/a%2Fb", bearer(e2e_tokens.read)),
    ]
    for status, path, headers in cases:
        response = http.get(path, headers=headers)
        assert str(response.status_code) == status, path
        errors = list(OAS31Validator(response_schema(spec, status)).iter_errors(response.json()))
        assert errors == [], (status, [e.message for e in errors])


def test_documented_success_schema_requires_the_contract_fields(spec: dict[str, Any]) -> None:
    """The documented checkpoint requires id, display_name, resources and state, as the seed."""
    schema = response_schema(spec, "200")
    validator = OAS31Validator(schema)
    missing_state = {
        "data": {
            "id": "3f2b9c1e-8a4d-4c7b-9e21-5d6f7a8b9c01",
            "display_name": "example",
            "resources": {
                "limits": {"memory_mib": 1},
                "requests": {"memory_mib": 1, "vcpus": 1},
            },
        }
    }
    assert not validator.is_valid(missing_state)
    assert not validator.is_valid({"data": {"state": "creating"}})
