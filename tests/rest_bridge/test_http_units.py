"""Unit tests of the HTTP layers' pure parts: entity tags, etag plans, gzip bodies, `$alt`,
CORS origins and their flag."""

from __future__ import annotations

import argparse
import gzip

import httpx
import pytest
from checkpoint.v1 import checkpoint_pb2 as pb
from starlette.types import Receive, Scope, Send

from rest_bridge.codec import Codec, DecodeError
from rest_bridge.compression import body_decoder
from rest_bridge.conditional import EtagPlan, TagList, etag_header, parse_tags, plan_for
from rest_bridge.cors import Cors, parse_origins
from rest_bridge.descriptor_set import default_descriptor_set, load_schema
from rest_bridge.options import BRIDGE_OPTIONS, add_options
from rest_bridge.routes import build_routes
from rest_bridge.status import ApiError
from rest_bridge.system_params import split_system


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("*", TagList(True, ())),
        ('"v1"', TagList(False, ((False, "v1"),))),
        (' W/"v1" , "v2",', TagList(False, ((True, "v1"), (False, "v2")))),
        ('""', TagList(False, ((False, ""),))),
    ],
)
def test_entity_tag_lists_parse(value: str, expected: TagList) -> None:
    """RFC 9110 §8.8.3 forms: *, strong and weak tags in a comma list."""
    assert parse_tags(value, "If-Match") == expected


@pytest.mark.parametrize("value", ["v1", '"v1', "W/v1", '"a"b"', ","])
def test_malformed_entity_tags_are_422_naming_the_header(value: str) -> None:
    """An unquoted or broken tag is refused, never taken as a different tag."""
    with pytest.raises(ApiError) as caught:
        parse_tags(value, "If-None-Match")
    assert caught.value.status == 422
    assert caught.value.violations[0][0] == "If-None-Match"


def test_weak_and_strong_comparison() -> None:
    """If-None-Match compares weakly, If-Match strongly (a weak tag never matches)."""
    tags = parse_tags('W/"v1"', "x")
    assert tags is not None
    assert tags.weak_match("v1")
    assert not tags.strong_match("v1")


def test_etag_plans_come_from_the_descriptors() -> None:
    """Get has a resource answer; Delete's etag is its request's, Update's its body's; List none."""
    table = build_routes(load_schema(default_descriptor_set()))
    plans = {route.rpc.name: plan_for(route) for route in table.routes}
    assert plans["GetCheckpoint"] == EtagPlan(resource=True, request_path=())
    assert plans["DeleteCheckpoint"] == EtagPlan(resource=True, request_path=("etag",))
    assert plans["UpdateCheckpoint"] == EtagPlan(resource=True, request_path=("checkpoint", "etag"))
    assert plans["CreateCheckpoint"] == EtagPlan(resource=True, request_path=())
    assert plans["ListCheckpoints"] == EtagPlan(resource=False, request_path=())


def test_etags_that_cannot_be_quoted_get_no_header() -> None:
    """A quote or a space in an etag would break the header, so none is sent."""
    assert etag_header("v1") == [(b"etag", b'"v1"')]
    assert etag_header('a"b') == []
    assert etag_header("a b") == []
    assert etag_header("") == []


def test_gzip_bodies_decode_within_the_limit() -> None:
    """A gzip body fed in pieces decodes; one byte over the limit decoded is 413."""
    wire = gzip.compress(b"x" * 100)
    decoder = body_decoder("GZIP", 100)
    out = b"".join(decoder.feed(wire[i : i + 7]) for i in range(0, len(wire), 7))
    decoder.finish()
    assert out == b"x" * 100
    with pytest.raises(ApiError) as caught:
        body_decoder("gzip", 99).feed(wire)
    assert caught.value.status == 413


def test_unknown_content_coding_is_415_offering_gzip() -> None:
    """deflate, br or a list of codings are refused with Accept-Encoding: gzip."""
    for coding in ("br", "deflate", "gzip, gzip"):
        with pytest.raises(ApiError) as caught:
            body_decoder(coding, 10)
        assert caught.value.status == 415
        assert caught.value.headers == {"Accept-Encoding": "gzip"}


def test_alt_is_split_from_the_query() -> None:
    """`$alt` is taken out of the pairs the request mapping sees; other pairs stay in order."""
    params, rest = split_system([("state", "ready"), ("$alt", "json;enum-encoding=int")])
    assert params.enums_as_numbers
    assert rest == [("state", "ready")]
    params, rest = split_system([("$alt", "json")])
    assert not params.enums_as_numbers
    assert rest == []


@pytest.mark.parametrize("query", [[("$fields", "id")], [("$alt", "media")]])
def test_other_system_parameters_are_refused(query: list[tuple[str, str]]) -> None:
    """Unknown `$` names and other `$alt` values are a DecodeError naming the parameter."""
    with pytest.raises(DecodeError) as caught:
        split_system(query)
    assert caught.value.field == query[0][0]


def test_origins_parse_and_refuse_paths() -> None:
    """Origins are lowercased; a path or trailing slash is a usage error."""
    assert parse_origins("https://App.example.com, http://127.0.0.1:8000,*") == (
        "https://app.example.com",
        "http://127.0.0.1:8000",
        "*",
    )
    for bad in ("https://example.com/", "example.com", "ftp://x"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_origins(bad)


def test_cors_flags_replace_the_environment_list() -> None:
    """The variable's comma list is the default; --cors-origin flags, repeated, replace it."""
    env = {"CHECKPOINT_REST_CORS_ORIGINS": "http://a.test,http://b.test"}
    parser = argparse.ArgumentParser()
    add_options(parser, BRIDGE_OPTIONS, env)
    assert parser.parse_args([]).cors_origins == ("http://a.test", "http://b.test")
    flags = ["--cors-origin", "http://c.test", "--cors-origin", "http://d.test"]
    assert parser.parse_args(flags).cors_origins == ("http://c.test", "http://d.test")
    bare = argparse.ArgumentParser()
    add_options(bare, BRIDGE_OPTIONS, {})
    assert bare.parse_args([]).cors_origins == ()


def test_enums_render_as_numbers_for_int_enum_encoding() -> None:
    """Codec(enums_as_numbers=True) writes the enum's number; the unspecified value stays out."""
    ready = pb.Checkpoint(display_name="x", state=pb.CHECKPOINT_STATE_READY)
    assert Codec(enums_as_numbers=True).encode(ready)["state"] == pb.CHECKPOINT_STATE_READY
    assert Codec().encode(ready)["state"] == "ready"
    assert "state" not in Codec(enums_as_numbers=True).encode(pb.Checkpoint())


async def _inner(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"vary", b"X")]})
    await send({"type": "http.response.body", "body": b"{}"})


@pytest.mark.anyio
async def test_any_origin_answers_star_without_vary() -> None:
    """With `*` every origin is allowed and the answer does not vary by origin."""
    app = Cors(_inner, ["*"], lambda path: ["GET", "HEAD"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as client:
        plain = await client.get("/x", headers={"Origin": "https://anywhere.test"})
        preflight = await client.options(
            "/x",
            headers={"Origin": "https://anywhere.test", "Access-Control-Request-Method": "GET"},
        )
        unknown = await client.options(
            "/x", headers={"Origin": "https://a.test", "Access-Control-Request-Method": "GET"}
        )
    assert plain.headers["access-control-allow-origin"] == "*"
    assert plain.headers["vary"] == "X"
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-methods"] == "GET, HEAD"
    assert "vary" not in preflight.headers
    assert unknown.status_code == 204


@pytest.mark.anyio
async def test_preflight_on_a_path_without_routes_reaches_the_app() -> None:
    """No methods bound: the preflight is the app's answer (the bridge's 404), with CORS headers."""
    app = Cors(_inner, ["https://a.test"], lambda path: [])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as client:
        response = await client.options(
            "/nowhere",
            headers={"Origin": "https://a.test", "Access-Control-Request-Method": "GET"},
        )
    assert response.status_code == 200  # _inner's answer stands in for the transcoder's 404
    assert response.headers["access-control-allow-origin"] == "https://a.test"
    assert response.headers["vary"] == "X, Origin"
