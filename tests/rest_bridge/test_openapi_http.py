"""The OpenAPI document describes HEAD, ETag, the preconditions with their 304 and 412, and `$alt`
exactly where the bridge honours them (from each route's etag plan)."""

from __future__ import annotations

from typing import Any

import pytest

from rest_bridge.descriptor_set import default_descriptor_set, load_schema
from rest_bridge.openapi import build_openapi
from rest_bridge.routes import build_routes

ITEM = "/v1/checkpoints/{checkpoint_id}"
COLLECTION = "/v1/checkpoints"
TRANSCODED = [
    (ITEM, "get"),
    (ITEM, "patch"),
    (ITEM, "delete"),
    (COLLECTION, "get"),
    (COLLECTION, "post"),
]


@pytest.fixture(scope="module")
def paths() -> dict[str, Any]:
    """The paths of the document built from the shipped descriptors."""
    schema = load_schema(default_descriptor_set())
    document: dict[str, Any] = build_openapi(schema, build_routes(schema))
    return document["paths"]  # type: ignore[no-any-return]


def _header_params(operation: dict[str, Any]) -> list[str]:
    return [p["name"] for p in operation["parameters"] if p["in"] == "header"]


def test_every_get_has_a_head_twin_without_bodies(paths: dict[str, Any]) -> None:
    """HEAD has the GET's parameters and statuses, and no response content."""
    for path, item in paths.items():
        assert ("head" in item) == ("get" in item), path
        head, get = item["head"], item["get"]
        assert head["operationId"] == get["operationId"] + "_Head"
        assert head.get("parameters") == get.get("parameters")
        assert list(head["responses"]) == list(get["responses"])
        assert all("content" not in r for r in head["responses"].values()), path


def test_etag_and_preconditions_follow_the_etag_plan(paths: dict[str, Any]) -> None:
    """Resource answers carry ETag; GET takes If-None-Match (304), writes If-Match (412)."""
    expected = {
        (ITEM, "get"): (True, ["If-None-Match", "If-Match"], {"304", "412"}),
        (ITEM, "patch"): (True, ["If-Match"], {"412"}),
        (ITEM, "delete"): (True, ["If-Match"], {"412"}),
        (COLLECTION, "post"): (True, ["Idempotency-Key"], set()),  # issue 13, part B
        (COLLECTION, "get"): (False, [], set()),
    }
    for (path, method), (etag, headers, statuses) in expected.items():
        operation = paths[path][method]
        responses = operation["responses"]
        assert ("ETag" in responses["200"]["headers"]) is etag, (path, method)
        assert _header_params(operation) == headers, (path, method)
        assert {"304", "412"} & set(responses) == statuses, (path, method)
    not_modified = paths[ITEM]["get"]["responses"]["304"]
    assert "content" not in not_modified
    assert set(not_modified["headers"]) == {"ETag", "X-Request-Id"}
    failed = paths[ITEM]["patch"]["responses"]["412"]
    error_ref = {"$ref": "#/components/schemas/Error"}
    assert failed["content"]["application/json"]["schema"] == error_ref
    keys = list(paths[ITEM]["get"]["responses"])
    assert keys == [*sorted(keys[:-1]), "default"]


def test_alt_is_documented_on_every_transcoded_operation(paths: dict[str, Any]) -> None:
    """`$alt` with its two values is a query parameter of every route, and only of routes."""
    for path, method in TRANSCODED:
        (alt,) = [p for p in paths[path][method]["parameters"] if p["name"] == "$alt"]
        assert alt["in"] == "query"
        assert alt["schema"]["enum"] == ["json", "json;enum-encoding=int"]
    assert "parameters" not in paths["/healthz"]["get"]
