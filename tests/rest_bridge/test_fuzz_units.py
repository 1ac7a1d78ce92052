"""Property-based fuzzing (hypothesis, bounded) of the bridge's parsers: path templates, query
strings and request transcoding only ever fail with their own error types, and round-trip.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rest_bridge.codec import Codec, DecodeError
from rest_bridge.descriptor_set import default_descriptor_set, load_schema
from rest_bridge.http_rule import PathDecodeError, PathTemplate, TemplateError, parse_template
from rest_bridge.request_mapping import parse_query, to_request
from rest_bridge.routes import Route, RouteTable, build_routes

_T = TypeVar("_T")

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Characters the template grammar gives meaning to, so random templates hit its branches.
_TEMPLATE_ALPHABET = "/{}*=.:%_-~aZ09!$&'()+,;@ \x00é"
_LITERAL_ALPHABET = "abcxyzABC0123456789-._~!$&'()+,;=@"
_IDENT_START = "abcdefghijklmnopqrstuvwxyz_"
_IDENT_REST = _IDENT_START + "0123456789"

_TABLE = build_routes(load_schema(default_descriptor_set()))
_ROUTES = {route.rpc.name: route for route in _TABLE.routes}
# Query names that reach the interesting branches: real fields (proto and JSON names), nested
# and well-known fields, path- and body-bound fields, and made-up ones.
_QUERY_NAMES = [
    "page_size",
    "pageSize",
    "page_token",
    "state",
    "etag",
    "checkpoint_id",
    "checkpointId",
    "update_mask",
    "updateMask",
    "update_mask.paths",
    "checkpoint",
    "checkpoint.display_name",
    "checkpoint.resources.limits.memory_mib",
    "checkpoint.create_time",
    "nope",
    "",
    ".",
    "page_size.x",
]


def _ident() -> st.SearchStrategy[str]:
    return st.builds(
        lambda head, tail: head + tail,
        st.sampled_from(_IDENT_START),
        st.text(_IDENT_REST, max_size=6),
    )


def _literal() -> st.SearchStrategy[str]:
    return st.text(_LITERAL_ALPHABET, min_size=1, max_size=8)


_NO_SURROGATES = st.characters(exclude_categories=["Cs"])
# A rendered path value: any Unicode text (no surrogates), percent-encoded on the way in.
_VALUE_TEXT = st.text(
    _NO_SURROGATES,
    min_size=1,
    max_size=12,
)


@st.composite
def _template_and_path(draw: st.DrawFn) -> tuple[str, str, dict[str, str]]:
    """A valid template, a raw path it must match, and the decoded value of each variable."""
    count = draw(st.integers(min_value=1, max_value=5))
    names = draw(st.lists(_ident(), min_size=count, max_size=count, unique=True))
    template_parts: list[str] = []
    path_parts: list[str] = []
    expected: dict[str, str] = {}
    for index in range(count):
        last = index == count - 1
        kind = draw(st.sampled_from(["literal", "star", "var", "var_pattern", "deep"]))
        if kind == "deep" and not last:
            kind = "var"
        if kind == "literal":
            literal = draw(_literal())
            template_parts.append(literal)
            path_parts.append(literal)
        elif kind == "star":
            template_parts.append("*")
            path_parts.append(quote(draw(_VALUE_TEXT), safe=""))
        elif kind == "var":
            value = draw(_VALUE_TEXT)
            template_parts.append("{" + names[index] + "}")
            path_parts.append(quote(value, safe=""))
            expected[names[index]] = value
        elif kind == "var_pattern":
            # {name=lit/*}: a multi-segment variable; its value keeps the literal raw.
            literal = draw(_literal())
            segment = draw(_VALUE_TEXT.filter(lambda s: "/" not in s))
            template_parts.append("{" + names[index] + "=" + literal + "/*}")
            path_parts.append(literal + "/" + quote(segment, safe=""))
            # Literals of _LITERAL_ALPHABET hold no "%", so decoding leaves them as they are.
            expected[names[index]] = literal + "/" + segment
        else:
            segments = draw(
                st.lists(_VALUE_TEXT.filter(lambda s: "/" not in s), min_size=1, max_size=3)
            )
            template_parts.append("{" + names[index] + "=**}")
            path_parts.append("/".join(quote(s, safe="") for s in segments))
            expected[names[index]] = "/".join(segments)
    verb = draw(st.one_of(st.just(""), _literal()))
    suffix = f":{verb}" if verb else ""
    return "/" + "/".join(template_parts) + suffix, "/" + "/".join(path_parts) + suffix, expected


def _attempt(call: Callable[[], _T], *allowed: type[Exception]) -> _T | Exception:
    """call's result, or the exception it raised if it is one of allowed (others propagate)."""
    try:
        return call()
    except allowed as exc:
        return exc


def test_random_templates_only_raise_template_error() -> None:
    """Any string either parses as a path template or raises TemplateError, nothing else."""
    seen: Counter[str] = Counter()

    @FUZZ
    @given(source=st.one_of(st.text(_TEMPLATE_ALPHABET, max_size=40), st.text(max_size=40)))
    def check(source: str) -> None:
        template = _attempt(lambda: parse_template(source), TemplateError)
        if isinstance(template, Exception):
            seen["refused"] += 1
            assert source in str(template) or repr(source) in str(template)
            return
        seen["parsed"] += 1
        assert isinstance(template, PathTemplate)
        assert template.source == source
        # Matching its own source text never raises anything but PathDecodeError.
        _attempt(lambda: template.match(source), PathDecodeError)

    check()
    assert seen["refused"] > 0, seen
    assert seen["parsed"] > 0, seen


@FUZZ
@given(case=_template_and_path())
def test_built_templates_match_their_rendered_paths(case: tuple[str, str, dict[str, str]]) -> None:
    """A template of random literals and variables matches a path rendered from it, and each
    variable decodes (exactly once) to the value that was percent-encoded into the path."""
    source, path, expected = case
    template = parse_template(source)
    assert len(template.variables) == len(expected)
    assert template.match(path) == expected
    # The same path with an extra trailing segment is a different path, unless "**" takes it.
    if not any("**" in variable.pattern for variable in template.variables):
        assert template.match(path + "/extra") is None


def test_random_query_bytes_only_raise_decode_error() -> None:
    """Any raw query string is a list of named pairs or a DecodeError, never another exception."""
    seen: Counter[str] = Counter()

    @FUZZ
    @given(raw=st.binary(max_size=60))
    def check(raw: bytes) -> None:
        pairs = _attempt(lambda: parse_query(raw), DecodeError)
        if isinstance(pairs, Exception):
            seen["refused"] += 1
            return
        seen["parsed"] += 1
        assert all(name for name, _ in pairs)

    check()
    assert seen["refused"] > 0, seen
    assert seen["parsed"] > 0, seen


@FUZZ
@given(
    pairs=st.lists(
        st.tuples(
            st.text(_NO_SURROGATES, min_size=1, max_size=10),
            st.text(_NO_SURROGATES, max_size=10),
        ),
        max_size=5,
    )
)
def test_encoded_query_pairs_round_trip(pairs: list[tuple[str, str]]) -> None:
    """Pairs form-encoded by the standard library decode back to exactly the same pairs."""
    assert parse_query(urlencode(pairs).encode("ascii")) == pairs


_QUERY = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(_QUERY_NAMES), st.text(max_size=12)),
        st.one_of(
            st.sampled_from(["1", "-1", "ready", "READY", "9" * 30, "a,b", "", "true"]),
            st.text(max_size=12),
        ),
    ),
    max_size=4,
)
_BODY = st.one_of(
    st.just(b""),
    st.binary(max_size=40),
    st.sampled_from(
        [
            b"{}",
            b'{"display_name": "x"}',
            b'{"resources": {"limits": {"memory_mib": "12"}}}',
            b'{"state": 7}',
            b"[]",
            b"null",
            b'"x"',
            b'{"update_mask": "display_name"}',
        ]
    ),
)


def test_random_requests_only_raise_decode_error() -> None:
    """Random query pairs, path values and bodies become a request message or a DecodeError."""
    seen: Counter[str] = Counter()

    @FUZZ
    @given(
        rpc=st.sampled_from(sorted(_ROUTES)),
        query=_QUERY,
        path_value=st.text(max_size=20),
        body=_BODY,
    )
    def check(rpc: str, query: list[tuple[str, str]], path_value: str, body: bytes) -> None:
        route: Route = _ROUTES[rpc]
        params = {variable.field_path: path_value for variable in route.template.variables}
        message = _attempt(lambda: to_request(route, Codec(), params, query, body), DecodeError)
        if isinstance(message, Exception):
            seen["refused"] += 1
            assert str(message)
            return
        seen["built"] += 1
        assert message.DESCRIPTOR.full_name == route.rpc.input_type.full_name
        message.SerializeToString()  # what was built is a whole message

    check()
    assert seen["refused"] > 0, seen
    assert seen["built"] > 0, seen


_FIELD_KEYS = [
    "display_name",
    "displayName",
    "resources",
    "limits",
    "requests",
    "memory_mib",
    "memoryMib",
    "vcpus",
    "state",
    "id",
    "etag",
    "create_time",
    "update_mask",
    "checkpoint",
]
_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["ready", "CHECKPOINT_STATE_READY", "2026-01-01T00:00:00Z", "1e3", "-0"]),
)
_JSON_VALUES = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.one_of(st.sampled_from(_FIELD_KEYS), st.text(max_size=6)), inner, max_size=4
        ),
    ),
    max_leaves=12,
)


def test_random_json_bodies_only_raise_decode_error() -> None:
    """Random JSON documents, shaped like checkpoints, as Create and Update bodies become a
    request message or a DecodeError, nothing else."""
    seen: Counter[str] = Counter()

    @FUZZ
    @given(
        rpc=st.sampled_from(["CreateCheckpoint", "UpdateCheckpoint"]),
        document=st.one_of(
            _JSON_VALUES,
            st.fixed_dictionaries(
                {},
                optional={
                    "display_name": _JSON_VALUES,
                    "state": _JSON_VALUES,
                    "resources": st.fixed_dictionaries(
                        {},
                        optional={
                            "limits": st.dictionaries(st.just("memory_mib"), _JSON_SCALARS),
                            "requests": st.dictionaries(
                                st.sampled_from(["memory_mib", "vcpus"]), _JSON_SCALARS
                            ),
                        },
                    ),
                },
            ),
        ),
    )
    def check(rpc: str, document: Any) -> None:
        route = _ROUTES[rpc]
        params = {variable.field_path: "name" for variable in route.template.variables}
        body = json.dumps(document).encode()
        built = _attempt(lambda: to_request(route, Codec(), params, [], body), DecodeError)
        seen["refused" if isinstance(built, Exception) else "built"] += 1

    check()
    assert seen["refused"] > 0, seen
    assert seen["built"] > 0, seen


def test_random_raw_query_through_to_request_only_raises_decode_error() -> None:
    """The bridge's query path (parse_query, then to_request for ListCheckpoints) on raw bytes
    and on near-valid query strings: a request or a DecodeError, nothing else."""
    seen: Counter[str] = Counter()
    near_valid = st.lists(
        st.sampled_from(
            [
                b"page_size=1",
                b"pageSize=%31",
                b"state=ready",
                b"page_token=",
                b"state=9",
                b"page_size=1e3",
                b"x=%zz",
                b"%C3%A9=1",
                b"=",
                b"&&",
                b"page_size=%FF",
            ]
        ),
        max_size=4,
    ).map(b"&".join)

    @FUZZ
    @given(raw=st.one_of(st.binary(max_size=80), near_valid))
    def check(raw: bytes) -> None:
        route = _ROUTES["ListCheckpoints"]
        built = _attempt(lambda: to_request(route, Codec(), {}, parse_query(raw), b""), DecodeError)
        seen["refused" if isinstance(built, Exception) else "built"] += 1

    check()
    assert seen["refused"] > 0, seen
    assert seen["built"] > 0, seen


def test_route_table_has_the_fuzzed_methods() -> None:
    """The fuzzed table holds the six CheckpointService routes (so no case is vacuous)."""
    assert isinstance(_TABLE, RouteTable)
    assert set(_ROUTES) == {
        "GetCheckpoint",
        "ListCheckpoints",
        "CreateCheckpoint",
        "UpdateCheckpoint",
        "DeleteCheckpoint",
        "WatchCheckpoints",
    }
    for route in _ROUTES.values():
        assert route.template.variables or route.rpc.name in {
            "ListCheckpoints",
            "CreateCheckpoint",
            "WatchCheckpoints",
        }
