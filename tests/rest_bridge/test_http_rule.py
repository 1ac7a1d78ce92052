"""Unit tests of rest_bridge.http_rule: parsing google.api.http templates and matching raw paths."""

from __future__ import annotations

import pytest

from rest_bridge.http_rule import PathDecodeError, TemplateError, Variable, parse_template


@pytest.mark.parametrize(
    ("source", "segments", "verb"),
    [
        pytest.param("/v1/{a}", ("v1", Variable("a", ("*",))), "", id="variable"),
        pytest.param("/v1/{a.b}", ("v1", Variable("a.b", ("*",))), "", id="dotted-field"),
        pytest.param(
            "/v1/{name=shelves/*}",
            ("v1", Variable("name", ("shelves", "*"))),
            "",
            id="variable-with-pattern",
        ),
        pytest.param("/v1/{name=**}", ("v1", Variable("name", ("**",))), "", id="double-star"),
        pytest.param("/v1/*", ("v1", "*"), "", id="star"),
        pytest.param("/v1/**", ("v1", "**"), "", id="bare-double-star"),
        pytest.param("/v1/{name}:cancel", ("v1", Variable("name", ("*",))), "cancel", id="verb"),
        pytest.param(
            "/v1/{name=shelves/*/books/*}:get",
            ("v1", Variable("name", ("shelves", "*", "books", "*"))),
            "get",
            id="pattern-and-verb",
        ),
        pytest.param("/v1/checkpoints", ("v1", "checkpoints"), "", id="literals-only"),
        pytest.param(
            "/v1/{parent=shelves/*}/books/{book}",
            ("v1", Variable("parent", ("shelves", "*")), "books", Variable("book", ("*",))),
            "",
            id="two-variables",
        ),
    ],
)
def test_parse_valid_templates(
    source: str, segments: tuple[str | Variable, ...], verb: str
) -> None:
    """Every form of the grammar parses into its segments and verb."""
    template = parse_template(source)
    assert template.source == source
    assert template.segments == segments
    assert template.verb == verb


@pytest.mark.parametrize(
    ("source", "shape"),
    [
        pytest.param("/v1/checkpoints/{checkpoint_id}", "/v1/checkpoints/*", id="variable"),
        pytest.param("/v1/{name=shelves/*}:undelete", "/v1/shelves/*:undelete", id="verb"),
        pytest.param("/v1/{name=**}", "/v1/**", id="double-star"),
    ],
)
def test_shape_drops_variable_names(source: str, shape: str) -> None:
    """A template's shape is its path with variables replaced by their patterns."""
    assert parse_template(source).shape == shape


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("", id="empty"),
        pytest.param("v1/x", id="no-leading-slash"),
        pytest.param("/", id="root-only"),
        pytest.param("/v1//x", id="empty-segment"),
        pytest.param("/v1/x/", id="trailing-slash"),
        pytest.param("/v1/{a", id="unclosed-brace"),
        pytest.param("/v1/a}", id="unmatched-brace"),
        pytest.param("/v1/{{a}}", id="nested-braces"),
        pytest.param("/v1/{}", id="empty-variable"),
        pytest.param("/v1/{1a}", id="field-starts-with-digit"),
        pytest.param("/v1/{a..b}", id="empty-field-part"),
        pytest.param("/v1/{a}/{a}", id="field-bound-twice"),
        pytest.param("/v1/**/x", id="double-star-not-last"),
        pytest.param("/v1/{a=**}/x", id="variable-double-star-not-last"),
        pytest.param("/v1/{a=b c}", id="bad-variable-pattern"),
        pytest.param("/v1/a b", id="space-in-literal"),
        pytest.param("/v1/x:", id="empty-verb"),
        pytest.param("/v1/x:a b", id="bad-verb"),
        pytest.param("/v1/{a}x", id="text-after-variable"),
    ],
)
def test_parse_invalid_templates(source: str) -> None:
    """A template breaking the grammar raises TemplateError naming the template."""
    with pytest.raises(TemplateError) as caught:
        parse_template(source)
    assert repr(source) in str(caught.value)


@pytest.mark.parametrize(
    ("source", "raw_path", "expected"),
    [
        pytest.param("/v1/{a}", "/v1/box", {"a": "box"}, id="plain"),
        pytest.param("/v1/{a}", "/v1/my%20box", {"a": "my box"}, id="space-decoded"),
        pytest.param("/v1/{a}", "/v1/a%2Fb", {"a": "a/b"}, id="encoded-slash-decoded"),
        pytest.param("/v1/{a}", "/v1/a%2fb", {"a": "a/b"}, id="lowercase-hex"),
        pytest.param("/v1/{a}", "/v1/%252F", {"a": "%2F"}, id="decoded-exactly-once"),
        pytest.param("/v1/{a}", "/v1/100%2520", {"a": "100%20"}, id="double-encoded-space"),
        pytest.param("/v1/{a}", "/v1/a+b", {"a": "a+b"}, id="plus-is-not-space"),
        pytest.param("/v1/{a}", "/v1/caf%C3%A9", {"a": "caf\u00e9"}, id="utf8-encoded"),
        pytest.param(
            "/v1/{a}",
            b"/v1/caf\xc3\xa9".decode("latin-1"),
            {"a": "caf\u00e9"},
            id="raw-utf8-bytes",
        ),
        pytest.param(
            "/v1/{name=shelves/*}",
            "/v1/shelves/s%201",
            {"name": "shelves/s 1"},
            id="pattern-variable",
        ),
        pytest.param(
            "/v1/{name=**}",
            "/v1/a%2Fb/c%20d",
            {"name": "a%2Fb/c d"},
            id="multi-segment-keeps-encoded-slash",
        ),
        pytest.param(
            "/v1/{name=shelves/*}",
            "/v1/shelves/a%2Fb",
            {"name": "shelves/a%2Fb"},
            id="multi-segment-pattern-keeps-encoded-slash",
        ),
        pytest.param(
            "/v1/{parent=shelves/*}/books/{book}",
            "/v1/shelves/s/books/b%20c",
            {"parent": "shelves/s", "book": "b c"},
            id="two-variables",
        ),
        pytest.param("/v1/{name}:cancel", "/v1/op:cancel", {"name": "op"}, id="verb"),
        pytest.param("/v1/*", "/v1/anything", {}, id="star-binds-nothing"),
    ],
)
def test_match(source: str, raw_path: str, expected: dict[str, str]) -> None:
    """A matching raw path yields each variable percent-decoded exactly once."""
    assert parse_template(source).match(raw_path) == expected


@pytest.mark.parametrize(
    ("source", "raw_path"),
    [
        pytest.param("/v1/{a}", "/v1/a/b", id="slash-splits-segments"),
        pytest.param("/v1/{a}", "/v1/a/", id="trailing-slash"),
        pytest.param("/v1/{a}", "/v1/", id="empty-segment"),
        pytest.param("/v1/{a}", "/v2/a", id="other-literal"),
        pytest.param("/v1/{a}", "/V1/a", id="literal-case"),
        pytest.param("/v1/{name=shelves/*}", "/v1/books/a", id="pattern-literal"),
        pytest.param("/v1/{name}:cancel", "/v1/op", id="missing-verb"),
        pytest.param("/v1/checkpoints", "/v1/checkpoints/x", id="longer"),
    ],
)
def test_no_match(source: str, raw_path: str) -> None:
    """A path the template does not describe does not match."""
    assert parse_template(source).match(raw_path) is None


@pytest.mark.parametrize(
    ("source", "raw_path", "field"),
    [
        pytest.param("/v1/{a}", "/v1/%FF", "a", id="single-segment"),
        pytest.param("/v1/{a}", "/v1/%C3", "a", id="truncated-sequence"),
        pytest.param("/v1/{x.y=**}", "/v1/ok/%FE", "x.y", id="multi-segment"),
    ],
)
def test_invalid_utf8_is_path_decode_error(source: str, raw_path: str, field: str) -> None:
    """A variable that does not percent-decode to UTF-8 raises PathDecodeError naming its field."""
    with pytest.raises(PathDecodeError) as caught:
        parse_template(source).match(raw_path)
    assert caught.value.field == field
    assert field in str(caught.value)


def test_specificity_orders_verbs_and_literals_first() -> None:
    """A verb beats no verb, and more literal segments beat fewer."""
    ordered = sorted(
        [
            parse_template("/v1/{name=**}"),
            parse_template("/v1/{a}"),
            parse_template("/v1/checkpoints"),
            parse_template("/v1/{name}:cancel"),
        ],
        key=lambda t: t.specificity,
    )
    assert [t.source for t in ordered] == [
        "/v1/{name}:cancel",
        "/v1/checkpoints",
        "/v1/{a}",
        "/v1/{name=**}",
    ]
