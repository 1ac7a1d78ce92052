"""A service the bridge has never seen, served over REST from its descriptors alone.

The echo server returns each request unchanged, so each response shows exactly which request
message the transcoder built from the HTTP request.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.transcoding.conftest import compile_protos

BOOK_ZERO: dict[str, Any] = {
    "id": "",
    "title": "",
    "pages": 0,
    "tags": [],
    "author": {"name": "", "born_year": 0},
    "ratings": {},
}


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        pytest.param(
            "GET",
            "/v1/shelves/s1/books/b%201",
            None,
            {"shelf": "s1", "book": {**BOOK_ZERO, "id": "b 1"}},
            id="two-variables-nested-field",
        ),
        pytest.param(
            "GET",
            "/v1/books/b2",
            None,
            {"shelf": "", "book": {**BOOK_ZERO, "id": "b2"}},
            id="additional-binding",
        ),
        pytest.param(
            "GET",
            "/v1/libraries/l%2F1/items/i1",
            None,
            {"name": "libraries/l%2F1/items/i1", "force": False},
            id="segment-pattern",
        ),
        pytest.param(
            "GET",
            "/v1/files/a/b%2Fc/d.txt",
            None,
            {"name": "a/b%2Fc/d.txt", "force": False},
            id="double-star-keeps-encoded-slash",
        ),
        pytest.param(
            "POST",
            "/v1/operations/op1:cancel",
            {"force": True},
            {"name": "operations/op1", "force": True},
            id="custom-verb-body-star",
        ),
        pytest.param(
            "POST",
            "/v1/shelves/s9/books",
            {"title": "Dune", "pages": "412", "genre": "science_fiction"},
            {**BOOK_ZERO, "title": "Dune", "pages": 412, "genre": "science_fiction"},
            id="body-field-and-response-body",
        ),
        pytest.param(
            "PATCH",
            "/v1/books/b7",
            {"title": "New", "author": {"name": "Le Guin"}},
            {
                "book": {
                    **BOOK_ZERO,
                    "id": "b7",
                    "title": "New",
                    "author": {"name": "Le Guin", "born_year": 0},
                },
                "update_mask": "title,author.name",
            },
            id="patch-infers-update-mask",
        ),
        pytest.param(
            "REPORT",
            "/v1/reports/r1",
            None,
            {"name": "r1", "force": False},
            id="custom-http-method",
        ),
    ],
)
def test_rule_forms(
    echo_http: httpx.Client, method: str, path: str, body: object, expected: dict[str, Any]
) -> None:
    """Each rule form fills the request the way google/api/http.proto describes."""
    response = echo_http.request(method, path, json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"data": expected}


def test_segment_pattern_needs_its_literals(echo_http: httpx.Client) -> None:
    """{name=libraries/*/items/*} matches only paths with those literal segments."""
    response = echo_http.get("/v1/libraries/l1/things/i1")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_colliding_rules_are_refused_at_start(tmp_path: Path) -> None:
    """A descriptor set whose rules would match the same requests stops the bridge at start-up."""
    descriptors = compile_protos("testing/v1/collide.proto", tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rest_bridge",
            "--listen",
            "127.0.0.1:1",
            "--upstream",
            "127.0.0.1:1",
            "--descriptor-set",
            str(descriptors),
            "--service",
            "testing.v1.CollideService",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "testing.v1.CollideService.First" in result.stderr
    assert "testing.v1.CollideService.Second" in result.stderr


def test_query_parameters_of_every_kind(echo_http: httpx.Client) -> None:
    """Nested, repeated, enum and well-known-type query parameters all reach the request."""
    params: list[tuple[str, str | int | float | bool | None]] = [
        ("query", "q"),
        ("limit", "5"),
        ("tags", "a"),
        ("tags", "b"),
        ("genre", "fiction"),
        ("genres", "science_fiction"),
        ("genres", "GENRE_FICTION"),
        ("author.name", "Ann"),
        ("author.born_year", "1929"),
        ("since", "2024-01-02T03:04:05Z"),
        ("within", "1.5s"),
        ("fields", "title,author.name"),
        ("min_pages", "100"),
        ("available", "true"),
        ("note", "hi"),
        ("score", "2.5"),
        ("token", "aGk="),
        ("offset", "-7"),
        ("f32", "9"),
        ("ratio", "0.5"),
        ("big", "18446744073709551615"),
    ]
    response = echo_http.get("/v1/search", params=params)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {
        "query": "q",
        "limit": 5,
        "tags": ["a", "b"],
        "genre": "fiction",
        "genres": ["science_fiction", "fiction"],
        "author": {"name": "Ann", "born_year": 1929},
        "since": "2024-01-02T03:04:05Z",
        "within": "1.500s",
        "fields": "title,author.name",
        "min_pages": 100,
        "available": True,
        "note": "hi",
        "score": 2.5,
        "token": "aGk=",
        "offset": -7,
        "f32": 9,
        "ratio": 0.5,
        "big": 18446744073709551615,
    }


def test_json_names_accepted_in_query(echo_http: httpx.Client) -> None:
    """lowerCamelCase JSON names are accepted for query parameters, as grpc-gateway does."""
    response = echo_http.get("/v1/search", params={"minPages": "3", "author.bornYear": "1"})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["min_pages"] == 3
    assert response.json()["data"]["author"]["born_year"] == 1


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "field"),
    [
        pytest.param("GET", "/v1/search", {"nope": "1"}, None, "nope", id="unknown-parameter"),
        pytest.param("GET", "/v1/search", {"limit": "x"}, None, "limit", id="not-an-integer"),
        pytest.param(
            "GET", "/v1/search", {"limit": "99999999999"}, None, "limit", id="int32-overflow"
        ),
        pytest.param(
            "GET",
            "/v1/search",
            [("query", "a"), ("query", "b")],
            None,
            "query",
            id="singular-twice",
        ),
        pytest.param("GET", "/v1/search", {"genre": "poetry"}, None, "genre", id="unknown-enum"),
        pytest.param(
            "GET", "/v1/search", {"since": "yesterday"}, None, "since", id="bad-timestamp"
        ),
        pytest.param("GET", "/v1/search", {"author": "x"}, None, "author", id="message-parameter"),
        pytest.param(
            "GET", "/v1/books/b1", {"book.id": "b2"}, None, "book.id", id="path-bound-parameter"
        ),
        pytest.param(
            "POST",
            "/v1/operations/o:cancel",
            {"force": "true"},
            {},
            "force",
            id="query-with-body-star",
        ),
        pytest.param(
            "POST",
            "/v1/shelves/s/books",
            None,
            {"pages": "many"},
            "book.pages",
            id="bad-body-field",
        ),
        pytest.param(
            "POST",
            "/v1/shelves/s/books",
            None,
            {"unknown": 1},
            "book.unknown",
            id="unknown-body-field",
        ),
    ],
)
def test_bad_input_is_invalid_argument(  # noqa: PLR0917 (one parameter per table column)
    echo_http: httpx.Client, method: str, path: str, params: Any, body: object, field: str
) -> None:
    """Input that does not fit the request is 422 invalid_argument naming the field."""
    response = echo_http.request(method, path, params=params, json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_argument"
    assert field in error["message"]


def test_malformed_json_body(echo_http: httpx.Client) -> None:
    """A body that is not JSON is 422 invalid_argument, never a 500."""
    response = echo_http.post("/v1/shelves/s/books", content=b"{not json")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_argument"


def test_unannotated_method_is_not_routed(echo_http: httpx.Client) -> None:
    """A method without a google.api.http rule has no REST route."""
    response = echo_http.post("/testing.v1.EchoService/Hidden", json={})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_upstream_status_passes_through(echo_http: httpx.Client) -> None:
    """A status the upstream service returns keeps its message and maps through the table."""
    response = echo_http.get("/v1/reports/x", headers={})
    assert response.status_code == 405  # REPORT only; GET is not bound on this path
    assert response.headers["allow"] == "REPORT"
    failed = echo_http.request("REPORT", "/v1/reports/fail")
    assert failed.status_code == 409
    assert failed.json() == {"error": {"code": "failed_precondition", "message": "asked to fail"}}


def test_openapi_documents_the_echo_service(echo_http: httpx.Client) -> None:
    """The OpenAPI document lists every bound route of the new service with its comments."""
    document = echo_http.get("/openapi.json").json()
    assert document["paths"]["/v1/shelves/{shelf}/books/{book.id}"]["get"]["description"] == (
        "Two variables, one a nested field path, and an additional binding."
    )
    assert "report" in document["paths"]["/v1/reports/{name}"]
    assert "/v1/{name}:cancel" in document["paths"]
    search = document["paths"]["/v1/search"]["get"]
    names = {p["name"] for p in search["parameters"]}
    assert {"author.name", "author.born_year", "since", "tags"} <= names


def test_idempotency_key_fills_any_posts_request_id(echo_http: httpx.Client) -> None:
    """Idempotency-Key is generic: another service's POST with a request_id string field gets
    the key's UUID there, a body request_id that disagrees is 422, and the route documents it."""
    from rest_bridge.idempotency import request_id_of

    sent = echo_http.post(
        "/v1/submissions", json={"payload": "x"}, headers={"Idempotency-Key": "order-42"}
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["data"] == {"payload": "x", "request_id": request_id_of("order-42")}
    assert "idempotent-replayed" not in sent.headers  # the echo server replays nothing
    clash = echo_http.post(
        "/v1/submissions",
        json={"payload": "x", "request_id": "other"},
        headers={"Idempotency-Key": "order-42"},
    )
    assert clash.status_code == 422
    assert clash.json()["error"]["details"][0]["field"] == "Idempotency-Key"
    document = echo_http.get("/openapi.json").json()
    submit = document["paths"]["/v1/submissions"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in submit["parameters"]}
    assert "Idempotent-Replayed" in submit["responses"]["200"]["headers"]
