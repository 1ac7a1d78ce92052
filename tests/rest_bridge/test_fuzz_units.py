"""Property-based fuzzing (hypothesis, bounded) of the bridge's parsers: path templates, query
strings and request transcoding only ever fail with their own error types, and round-trip.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rest_bridge.codec import Codec, DecodeError
from rest_bridge.http_rule import PathTemplate, TemplateError, parse_template
from rest_bridge.routes import Route, RouteTable, build_routes
from rest_bridge.schema import default_descriptor_set, load_schema
from rest_bridge.transcode import parse_query, to_request

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


# A rendered path value: any Unicode text (no surrogates), percent-encoded on the way in.
_VALUE_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",)),
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


@FUZZ
@given(source=st.one_of(st.text(_TEMPLATE_ALPHABET, max_size=40), st.text(max_size=40)))
def test_random_templates_only_raise_template_error(source: str) -> None:
    """Any string either parses as a path template or raises TemplateError, nothing else."""
    try:
        template = parse_template(source)
    except TemplateError as exc:
        assert str(exc)
        return
    assert isinstance(template, PathTemplate)
    assert template.source == source
    # A parsed template's regex is usable: matching its own source text never raises.
    try:
        template.match(source)
    except ValueError as exc:  # PathDecodeError, for a "%" in a literal of the source
        assert "percent-encoded" in str(exc)


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


@FUZZ
@given(raw=st.binary(max_size=60))
def test_random_query_bytes_only_raise_decode_error(raw: bytes) -> None:
    """Any raw query string is a list of pairs or a DecodeError, never another exception."""
    try:
        pairs = parse_query(raw)
    except DecodeError as exc:
        assert str(exc)
        return
    assert all(name for name, _ in pairs)


@FUZZ
@given(
    pairs=st.lists(
        st.tuples(
            st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=10),
            st.text(st.characters(blacklist_categories=("Cs",)), max_size=10),
        ),
        max_size=5,
    )
)
def test_encoded_query_pairs_round_trip(pairs: list[tuple[str, str]]) -> None:
    """Pairs form-encoded by the standard library decode back to exactly the same pairs."""
    assert parse_query(urlencode(pairs).encode("ascii")) == pairs


@FUZZ
@given(
    rpc=st.sampled_from(sorted(_ROUTES)),
    query=st.lists(
        st.tuples(
            st.one_of(st.sampled_from(_QUERY_NAMES), st.text(max_size=12)),
            st.one_of(
                st.sampled_from(["1", "-1", "ready", "READY", "9" * 30, "a,b", "", "true"]),
                st.text(max_size=12),
            ),
        ),
        max_size=4,
    ),
    path_value=st.text(max_size=20),
    body=st.one_of(
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
    ),
)
def test_random_requests_only_raise_decode_error(
    rpc: str, query: list[tuple[str, str]], path_value: str, body: bytes
) -> None:
    """Random query pairs, path values and bodies become a request message or a DecodeError."""
    route: Route = _ROUTES[rpc]
    params = {variable.field_path: path_value for variable in route.template.variables}
    try:
        message = to_request(route, Codec(), params, query, body)
    except DecodeError as exc:
        assert str(exc)
        return
    assert message.DESCRIPTOR.full_name == route.rpc.input_type.full_name
    # What was built serializes (no half-set state left behind).
    message.SerializeToString()


@FUZZ
@given(raw=st.binary(max_size=80))
def test_random_raw_query_through_to_request_only_raises_decode_error(raw: bytes) -> None:
    """The bridge's query path (parse_query then to_request) on raw bytes: only DecodeError."""
    route = _ROUTES["ListCheckpoints"]
    try:
        to_request(route, Codec(), {}, parse_query(raw), b"")
    except DecodeError as exc:
        assert str(exc)


def test_route_table_has_the_fuzzed_methods() -> None:
    """The fuzzed table holds the five CheckpointService routes (so no case is vacuous)."""
    assert isinstance(_TABLE, RouteTable)
    assert set(_ROUTES) == {
        "GetCheckpoint",
        "ListCheckpoints",
        "CreateCheckpoint",
        "UpdateCheckpoint",
        "DeleteCheckpoint",
    }
    for route in _ROUTES.values():
        assert route.template.variables or route.rpc.name in {
            "ListCheckpoints",
            "CreateCheckpoint",
        }

