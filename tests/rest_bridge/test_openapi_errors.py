"""The OpenAPI error responses follow the status table and the error renderer.

The expectation is written out by hand here (from the seed page and api-contract.md), not read
from rest_bridge.status, and the tests that change a row of the table check that the document
changes with it: the document cannot drift from what ApiError renders.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from rest_bridge import status
from rest_bridge.descriptor_set import default_descriptor_set, load_schema
from rest_bridge.openapi import build_openapi
from rest_bridge.routes import build_routes
from rest_bridge.status import STATUS_DESCRIPTIONS, STATUS_TABLE, ApiError, ErrorHeader, StatusRow

S = grpc.StatusCode
RID = "X-Request-Id"
AUTH = "WWW-Authenticate"
RETRY = "Retry-After"

# Response key -> (description, header names), in the document's order.
EXPECTED: dict[str, tuple[str, list[str]]] = {
    "401": ("Missing, malformed, or rejected bearer token", [RID, AUTH]),
    "403": ("The bearer token is not allowed to perform this action", [RID]),
    "404": ("The requested resource was not found", [RID]),
    "409": ("The request conflicts with current resource state", [RID]),
    "422": ("Validation or application error", [RID]),
    "429": ("Rate limit exceeded", [RID, RETRY]),
    "503": ("Upstream service is unavailable", [RID, RETRY]),
    "504": ("Upstream request timed out", [RID]),
    "default": ("Error response", [RID]),
}
HEADER_TEXT = {
    RID: "The request id, echoed or generated.",
    AUTH: 'Bearer, with error="invalid_token" when a token was sent.',
    RETRY: "Seconds to wait before retrying.",
}


def _document() -> dict[str, Any]:
    schema = load_schema(default_descriptor_set())
    return build_openapi(schema, build_routes(schema))


CONDITIONAL = frozenset({"304", "412"})
"""Documented by the etag plan (rest_bridge.openapi_http), tested in test_openapi_http.py."""


def _errors(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    responses: dict[str, Any] = document["paths"][path][method]["responses"]
    return {k: v for k, v in responses.items() if k != "200" and k not in CONDITIONAL}


def _summary(errors: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    return {key: (r["description"], list(r["headers"])) for key, r in errors.items()}


def test_every_operation_documents_the_expected_errors() -> None:
    """Each operation lists exactly the expected error responses, in order, with headers."""
    document = _document()
    for path, operations in document["paths"].items():
        if path in ("/healthz", "/readyz"):
            continue
        for method in set(operations) - {"head"}:
            errors = _errors(document, path, method)
            assert list(errors) == list(EXPECTED), (path, method)
            assert _summary(errors) == EXPECTED, (path, method)
            for response in errors.values():
                for name, header in response["headers"].items():
                    assert header == {
                        "description": HEADER_TEXT[name],
                        "schema": {"type": "string"},
                    }
                assert response["content"] == {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                }


def test_probes_document_the_unavailable_response() -> None:
    """The probes document 503, the status of UNAVAILABLE, with Retry-After."""
    document = _document()
    for path in ("/healthz", "/readyz"):
        errors = _errors(document, path, "get")
        assert _summary(errors) == {"503": EXPECTED["503"]}


def _rendered_headers(code: grpc.StatusCode) -> set[str]:
    retry = 1.0 if code in (S.RESOURCE_EXHAUSTED, S.UNAVAILABLE) else None
    headers, _ = ApiError(code, "m", retry_after=retry).render(token_given=True, request_id="r")
    return set(headers)


@pytest.mark.parametrize("code", [c for c in S if c is not S.OK], ids=lambda c: c.name.lower())
def test_rendered_headers_are_documented(code: grpc.StatusCode) -> None:
    """The headers ApiError.render adds for a code are the ones its documented response lists."""
    errors = _errors(_document(), "/v1/checkpoints/{checkpoint_id}", "get")
    key = str(STATUS_TABLE[code].http)
    documented = errors.get(key, errors["default"])
    assert _rendered_headers(code) == set(documented["headers"])


def test_changed_status_changes_the_document(monkeypatch: pytest.MonkeyPatch) -> None:
    """Moving NOT_FOUND to 410 replaces the documented 404 with a 410."""
    monkeypatch.setitem(STATUS_TABLE, S.NOT_FOUND, StatusRow(410, "not_found"))
    monkeypatch.delitem(STATUS_DESCRIPTIONS, 404)
    monkeypatch.setitem(STATUS_DESCRIPTIONS, 410, "Gone for good")
    errors = _errors(_document(), "/v1/checkpoints/{checkpoint_id}", "get")
    assert "404" not in errors
    assert list(errors)[3] == "410"
    assert _summary(errors)["410"] == ("Gone for good", [RID])
    assert ApiError(S.NOT_FOUND, "m").status == 410


def test_changed_description_changes_the_document(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new description for 429 is the document's description for 429."""
    monkeypatch.setitem(STATUS_DESCRIPTIONS, 429, "Too many requests, slow down")
    errors = _errors(_document(), "/v1/checkpoints", "get")
    assert _summary(errors)["429"] == ("Too many requests, slow down", [RID, RETRY])


def test_undescribed_status_falls_under_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """A status described as None is no longer listed on its own; default stands for it."""
    monkeypatch.setitem(STATUS_DESCRIPTIONS, 504, None)
    errors = _errors(_document(), "/v1/checkpoints", "get")
    assert list(errors) == [key for key in EXPECTED if key != "504"]


def test_code_moving_status_takes_its_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    """UNAUTHENTICATED moved to 403 takes WWW-Authenticate there; 401 is then unused."""
    monkeypatch.setitem(STATUS_TABLE, S.UNAUTHENTICATED, StatusRow(403, "unauthenticated"))
    monkeypatch.delitem(STATUS_DESCRIPTIONS, 401)
    errors = _errors(_document(), "/v1/checkpoints", "get")
    assert "401" not in errors
    assert _summary(errors)["403"][1] == [RID, AUTH]


def test_new_error_header_is_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    """A header added to ERROR_HEADERS for a code appears on that code's response only."""
    extra = ErrorHeader("X-Upstream", "Which replica failed.", frozenset({S.DEADLINE_EXCEEDED}))
    monkeypatch.setattr(status, "ERROR_HEADERS", (*status.ERROR_HEADERS, extra))
    errors = _errors(_document(), "/v1/checkpoints", "get")
    assert _summary(errors)["504"][1] == [RID, "X-Upstream"]
    assert errors["504"]["headers"]["X-Upstream"]["description"] == "Which replica failed."
    assert _summary(errors)["503"][1] == [RID, RETRY]


@pytest.mark.parametrize(
    ("change", "missing", "unused"),
    [
        pytest.param((S.NOT_FOUND, StatusRow(410, "not_found")), "[410]", "[404]", id="new"),
        pytest.param((S.CANCELLED, StatusRow(500, "cancelled")), "[]", "[499]", id="unused"),
    ],
)
def test_undescribed_row_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    change: tuple[grpc.StatusCode, StatusRow],
    missing: str,
    unused: str,
) -> None:
    """A row whose status STATUS_DESCRIPTIONS does not name fails the build, naming both."""
    monkeypatch.setitem(STATUS_TABLE, *change)
    with pytest.raises(ValueError, match="STATUS_DESCRIPTIONS") as caught:
        _document()
    assert f"missing {missing}" in str(caught.value)
    assert f"unused {unused}" in str(caught.value)


def test_error_schema_lists_the_table_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Error schema's code enum is the table's error codes."""
    enum = _document()["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
    assert enum["code"]["enum"] == sorted(
        [
            "aborted",
            "already_exists",
            "cancelled",
            "data_loss",
            "deadline_exceeded",
            "failed_precondition",
            "internal",
            "invalid_argument",
            "not_found",
            "out_of_range",
            "permission_denied",
            "resource_exhausted",
            "unauthenticated",
            "unavailable",
            "unimplemented",
            "unknown",
        ]
    )
    monkeypatch.setitem(STATUS_TABLE, S.DATA_LOSS, StatusRow(500, "lost_data"))
    enum = _document()["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
    assert "lost_data" in enum["code"]["enum"]
    assert "data_loss" not in enum["code"]["enum"]
