"""HEAD, CORS, ETag and conditional requests, gzip and `$alt`, through both REST doors.

Every test runs against the separate bridge process and `checkpoint-server serve --rest-listen`
(tests.e2e.doors), over real sockets, and most also check that both doors answer alike.
"""

from __future__ import annotations

import gzip
import itertools
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.e2e.doors import Doors, open_doors

ALLOWED = "http://127.0.0.1:1"
OTHER_ALLOWED = "http://localhost:2"
DISALLOWED = "http://127.0.0.1:3"
SEED = [
    {
        "id": "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b",
        "display_name": "seeded",
        "resources": {"limits": {"memory_mib": 64}, "requests": {"memory_mib": 32, "vcpus": 1}},
        "state": "ready",
    },
    *(
        {
            "display_name": f"filler-{i:02d}-" + "x" * 60,
            "resources": {"limits": {"memory_mib": 8}, "requests": {"memory_mib": 8, "vcpus": 1}},
        }
        for i in range(20)
    ),
]
_names = itertools.count()


@pytest.fixture(scope="module")
def doors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Doors]:
    """Both doors, CORS allowing ALLOWED and OTHER_ALLOWED."""
    with open_doors(tmp_path_factory.mktemp("http"), SEED, [ALLOWED, OTHER_ALLOWED]) as started:
        yield started


@pytest.fixture(params=["inprocess", "bridge"])
def door(request: pytest.FixtureRequest, doors: Doors) -> Iterator[httpx.Client]:
    """A client for one door, with the read-write token (no automatic decompression needed:
    httpx decodes gzip, and tests that look at the wire ask for raw bytes)."""
    with httpx.Client(
        base_url=getattr(doors, request.param),
        timeout=10.0,
        headers={"Authorization": f"Bearer {doors.both}"},
    ) as client:
        yield client


def _headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in ("date", "x-request-id")}


def _answer(response: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    return response.status_code, response.content, _headers(response)


def _alike(doors: Doors, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """Send the same request through both doors; the answers must be identical (Date aside)."""
    answers = []
    for base in doors.urls.values():
        with httpx.Client(base_url=base, timeout=10.0) as client:
            answers.append(client.request(method, path, **kwargs))
    assert _answer(answers[0]) == _answer(answers[1])
    return answers[0]


def _create(client: httpx.Client) -> dict[str, Any]:
    body = {
        "display_name": f"http-{next(_names)}",
        "resources": {"limits": {"memory_mib": 16}, "requests": {"memory_mib": 8, "vcpus": 1}},
    }
    response = client.post("/v1/checkpoints", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    assert response.headers["etag"] == f'"{data["etag"]}"'
    return data


# -- HEAD -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/v1/checkpoints/seeded", "/v1/checkpoints?page_size=50", "/v1/checkpoints/nothing-here"],
    ids=["resource", "list", "not-found"],
)
def test_head_is_the_gets_status_and_headers_without_a_body(door: httpx.Client, path: str) -> None:
    """HEAD answers exactly the GET's status and headers (gzip and Content-Length too)."""
    get = door.get(path, headers={"Accept-Encoding": "gzip"})
    with door.stream("HEAD", path, headers={"Accept-Encoding": "gzip"}) as head:
        raw = b"".join(head.iter_raw())
    assert raw == b""
    assert (head.status_code, _headers(head)) == (get.status_code, _headers(get))
    assert int(head.headers["content-length"]) > 0


def test_head_of_the_bridges_own_paths_and_405_allow(doors: Doors) -> None:
    """/openapi.json answers HEAD like GET; a wrong method's Allow lists HEAD beside GET."""
    head = _alike(doors, "HEAD", "/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert head.status_code == 200
    assert head.headers["content-encoding"] == "gzip"
    wrong = _alike(doors, "PUT", "/v1/checkpoints/seeded")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "DELETE, GET, HEAD, PATCH"


# -- CORS -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/v1/checkpoints", "GET, HEAD, POST"),
        ("/v1/checkpoints/seeded", "DELETE, GET, HEAD, PATCH"),
        ("/readyz", "GET, HEAD"),
    ],
)
def test_preflight_from_an_allowed_origin_lists_the_paths_methods(
    doors: Doors, path: str, methods: str
) -> None:
    """A preflight is 204 with the methods bound to its path and the allowed request headers."""
    response = _alike(
        doors,
        "OPTIONS",
        path,
        headers={
            "Origin": OTHER_ALLOWED,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, if-none-match",
            "X-Request-Id": "pre",
        },
    )
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == OTHER_ALLOWED
    assert response.headers["access-control-allow-methods"] == methods
    allowed = response.headers["access-control-allow-headers"].split(", ")
    assert allowed == [
        "Authorization",
        "Content-Type",
        "X-Request-Id",
        "Grpc-Timeout",
        "traceparent",
        "If-Match",
        "If-None-Match",
        "Idempotency-Key",
    ]
    assert response.headers["access-control-max-age"] == "600"
    assert response.headers["vary"] == "Origin"


def test_preflight_from_another_origin_is_403_without_cors_headers(doors: Doors) -> None:
    """An origin not allowed gets the envelope's 403 and no Access-Control-* header."""
    response = _alike(
        doors,
        "OPTIONS",
        "/v1/checkpoints/seeded",
        headers={"Origin": DISALLOWED, "Access-Control-Request-Method": "GET"},
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert DISALLOWED in response.json()["error"]["message"]
    assert not [h for h in response.headers if h.startswith("access-control-")]


def test_options_without_preflight_headers_stays_405(doors: Doors) -> None:
    """An OPTIONS that is not a preflight is the route table's 405, as with CORS off."""
    response = _alike(doors, "OPTIONS", "/v1/checkpoints", headers={"Origin": ALLOWED})
    assert response.status_code == 405
    assert response.headers["access-control-allow-origin"] == ALLOWED


def test_responses_to_an_allowed_origin_carry_cors_headers(doors: Doors) -> None:
    """Success and error answers alike get Allow-Origin and the exposed headers."""
    auth = {"Authorization": f"Bearer {doors.reader}", "Origin": ALLOWED}
    ok = _alike(doors, "GET", "/v1/checkpoints/seeded", headers=auth)
    missing = _alike(doors, "GET", "/v1/checkpoints/seeded", headers={"Origin": ALLOWED})
    for response, status in ((ok, 200), (missing, 401)):
        assert response.status_code == status
        assert response.headers["access-control-allow-origin"] == ALLOWED
        assert response.headers["access-control-expose-headers"] == (
            "X-Request-Id, Retry-After, ETag, WWW-Authenticate"
        )
        assert "Origin" in response.headers["vary"]
    other = _alike(doors, "GET", "/v1/checkpoints/seeded", headers={**auth, "Origin": DISALLOWED})
    assert other.status_code == 200
    assert not [h for h in other.headers if h.startswith("access-control-")]
    assert other.headers["vary"] == "Origin"


# -- ETag and conditional requests ----------------------------------------------------------


def test_get_with_a_matching_if_none_match_is_304_with_the_etag(door: httpx.Client) -> None:
    """Every form that matches (the tag, W/, a list, *) is 304 with ETag and no body."""
    data = _create(door)
    path = f"/v1/checkpoints/{data['id']}"
    first = door.get(path)
    etag = first.headers["etag"]
    assert etag == f'"{data["etag"]}"'
    for header in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        for method in ("GET", "HEAD"):
            response = door.request(method, path, headers={"If-None-Match": header})
            assert response.status_code == 304, (header, method, response.text)
            assert response.headers["etag"] == etag
            assert response.content == b""
            assert "content-type" not in response.headers
    changed = door.get(path, headers={"If-None-Match": '"v0"'})
    assert changed.status_code == 200
    assert changed.json()["data"]["id"] == data["id"]


def test_if_match_on_patch_and_delete_is_412_unless_it_matches(door: httpx.Client) -> None:
    """A stale If-Match is 412 failed_precondition; the current one writes and moves the ETag."""
    data = _create(door)
    path = f"/v1/checkpoints/{data['id']}"
    body = {"state": "ready"}
    stale = door.patch(path, json=body, headers={"If-Match": '"v999"'})
    assert stale.status_code == 412, stale.text
    assert stale.json()["error"]["code"] == "failed_precondition"
    updated = door.patch(path, json=body, headers={"If-Match": f'"{data["etag"]}"'})
    assert updated.status_code == 200, updated.text
    new_etag = updated.headers["etag"]
    assert new_etag == f'"{updated.json()["data"]["etag"]}"' != f'"{data["etag"]}"'
    refused = door.delete(path, headers={"If-Match": f'"{data["etag"]}"'})
    assert refused.status_code == 412
    assert door.get(path).status_code == 200
    deleted = door.delete(path, headers={"If-Match": new_etag})
    assert deleted.status_code == 200
    assert door.get(path).status_code == 404


def test_if_match_star_matches_any_existing_resource_and_404s_a_missing_one(
    door: httpx.Client,
) -> None:
    """`If-Match: *` writes whatever the etag; on a missing resource it is the plain 404."""
    data = _create(door)
    path = f"/v1/checkpoints/{data['id']}"
    assert door.patch(path, json={"state": "ready"}, headers={"If-Match": "*"}).status_code == 200
    assert door.delete(path, headers={"If-Match": "*"}).status_code == 200
    again = door.delete(path, headers={"If-Match": "*"})
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "not_found"


def test_a_body_etag_mismatch_without_if_match_stays_409(door: httpx.Client) -> None:
    """The 412 is only for If-Match: the body's own stale etag keeps the table's 409 aborted."""
    data = _create(door)
    path = f"/v1/checkpoints/{data['id']}?update_mask=state"
    response = door.patch(path, json={"state": "ready", "etag": "v999"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "aborted"


def test_concurrent_writes_with_one_if_match_let_exactly_one_through(door: httpx.Client) -> None:
    """The check is the server's, inside the write: of 6 racing PATCHes only one matches."""
    data = _create(door)
    path = f"/v1/checkpoints/{data['id']}"
    headers = {"If-Match": f'"{data["etag"]}"'}

    def patch(i: int) -> int:
        return door.patch(
            path, json={"resources": {"limits": {"memory_mib": 16 + i}}}, headers=headers
        ).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = sorted(pool.map(patch, range(6)))
    assert statuses == [200, 412, 412, 412, 412, 412]


@pytest.mark.parametrize(
    "case",
    [
        ("GET", "/v1/checkpoints/seeded", {"If-None-Match": "v1"}, 422, "If-None-Match"),
        ("GET", "/v1/checkpoints/seeded", {"If-Match": '"v999"'}, 412, None),
        ("POST", "/v1/checkpoints", {"If-Match": '"v1"'}, 422, "If-Match"),
        ("PATCH", "/v1/checkpoints/seeded", {"If-None-Match": "*"}, 422, "If-None-Match"),
        ("PATCH", "/v1/checkpoints/seeded", {"If-Match": 'W/"v1"'}, 412, None),
        ("DELETE", "/v1/checkpoints/seeded", {"If-Match": '"v1", "v2"'}, 422, None),
    ],
    ids=["unquoted", "get-if-match", "create", "write-if-none-match", "weak", "two-tags"],
)
def test_preconditions_the_bridge_cannot_honour_are_refused_clearly(
    doors: Doors, case: tuple[str, str, dict[str, str], int, str | None]
) -> None:
    """Malformed or unsupported preconditions are an envelope, never silently ignored."""
    method, path, headers, status, field = case
    sent = {**headers, "Authorization": f"Bearer {doors.both}"}
    response = _alike(doors, method, path, headers=sent, json={"state": "ready"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == ("invalid_argument" if status == 422 else "failed_precondition")
    if field is not None:
        assert error["details"][0]["field"] == field


# -- compression ----------------------------------------------------------------------------


def test_large_answers_are_gzipped_when_accepted(door: httpx.Client) -> None:
    """A list over 1 KiB is gzip for a client that accepts it, plain otherwise; small stay plain."""
    with door.stream(
        "GET", "/v1/checkpoints?page_size=50", headers={"Accept-Encoding": "gzip"}
    ) as r:
        wire = b"".join(r.iter_raw())
    assert r.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in r.headers["vary"]
    plain = door.get("/v1/checkpoints?page_size=50", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert gzip.decompress(wire) == plain.content
    assert len(wire) < len(plain.content) / 2
    small = door.get("/v1/checkpoints/seeded", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers


def test_gzip_request_bodies_are_accepted(door: httpx.Client) -> None:
    """A create whose body is gzip-compressed is decoded and served."""
    body = (
        b'{"display_name": "gz-%d", "resources": {"limits": {"memory_mib": 4}, '
        b'"requests": {"memory_mib": 2, "vcpus": 1}}}' % next(_names)
    )
    response = door.post(
        "/v1/checkpoints", content=gzip.compress(body), headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["resources"]["limits"]["memory_mib"] == 4


def test_a_gzip_bomb_is_413_by_its_decompressed_size(doors: Doors) -> None:
    """10 KiB of gzip inflating to 64 MiB is refused by the 1 MiB limit on the decoded body."""
    bomb = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    wire = b"".join(bomb.compress(b" " * (1 << 20)) for _ in range(64)) + bomb.flush()
    assert len(wire) < 100_000
    response = _alike(
        doors,
        "POST",
        "/v1/checkpoints",
        content=wire,
        headers={"Content-Encoding": "gzip", "Authorization": f"Bearer {doors.both}"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "invalid_argument"


@pytest.mark.parametrize(
    ("encoding", "content", "status"),
    [("br", b"{}", 415), ("gzip", b"not gzip", 422), ("gzip", gzip.compress(b"{}")[:-4], 422)],
    ids=["unknown-coding", "corrupt", "truncated"],
)
def test_bad_content_encodings_are_clear_errors(
    doors: Doors, encoding: str, content: bytes, status: int
) -> None:
    """An unsupported coding is 415 naming gzip; bytes that are not gzip are 422."""
    response = _alike(
        doors,
        "POST",
        "/v1/checkpoints",
        content=content,
        headers={"Content-Encoding": encoding, "Authorization": f"Bearer {doors.both}"},
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]["details"][0]["field"] == "Content-Encoding"
    if status == 415:
        assert response.headers["accept-encoding"] == "gzip"


# -- system parameters ----------------------------------------------------------------------


def test_alt_json_with_int_enums_renders_enum_numbers(doors: Doors) -> None:
    """`$alt=json;enum-encoding=int` answers enums as numbers; `$alt=json` as names."""
    auth = {"Authorization": f"Bearer {doors.reader}"}
    numbers = _alike(
        doors, "GET", "/v1/checkpoints/seeded?$alt=json;enum-encoding=int", headers=auth
    )
    assert numbers.status_code == 200, numbers.text
    assert numbers.json()["data"]["state"] == 2
    listed = _alike(doors, "GET", "/v1/checkpoints?%24alt=json%3Benum-encoding%3Dint", headers=auth)
    assert {c["state"] for c in listed.json()["data"]["checkpoints"]} <= {1, 2, 3, 4}
    names = _alike(doors, "GET", "/v1/checkpoints/seeded?$alt=json", headers=auth)
    assert names.json()["data"]["state"] == "ready"


@pytest.mark.parametrize("query", ["$fields=id", "$alt=proto", "$alt=json&$alt=json", "colour=red"])
def test_other_system_and_unknown_parameters_stay_422(doors: Doors, query: str) -> None:
    """Only `$alt` (json forms) is honoured; anything else is the unknown-parameter 422."""
    auth = {"Authorization": f"Bearer {doors.reader}"}
    response = _alike(doors, "GET", f"/v1/checkpoints/seeded?{query}", headers=auth)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_argument"
