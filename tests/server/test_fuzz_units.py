"""Property-based fuzzing (hypothesis, bounded) of the server's input parsers: the Authorization
header and checkpoint_id lookups only ever fail with the service's own errors.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.auth import METHOD_SCOPES, Authenticator
from server.domain import ById, Lookup, is_uuid_form, parse_lookup, validate_display_name
from server.errors import InvalidArgument, PermissionDenied, Unauthenticated
from server.tokens import TokenRecord, hash_token

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

READ, WRITE = "checkpoints:read", "checkpoints:write"
TOKENS = {"reader": "ckpt_reader-Token_1", "writer": "ckpt_writer~token.2", "both": "ckpt_b+/=="}
SCOPES = {"reader": {READ}, "writer": {WRITE}, "both": {READ, WRITE}}
RECORDS = {
    hash_token(token): TokenRecord(name, hash_token(token), frozenset(SCOPES[name]))
    for name, token in TOKENS.items()
}
# Every message authorize may answer with: fixed texts, or the scope message naming the
# token's name from the tokens file (never anything the caller sent).
FIXED_MESSAGES = {
    "missing bearer token: send the header 'Authorization: Bearer <token>'",
    "malformed authorization header: expected 'Bearer <token>'",
    "invalid bearer token",
}
SCOPE_MESSAGE = re.compile(
    r"token '(reader|writer|both)' lacks the scope "
    r"(checkpoints:read|checkpoints:write|a scope no token has) for this call"
)
METHODS = [*sorted(METHOD_SCOPES), "/checkpoint.v1.CheckpointService/Nope", "", "x"]

_B64TOKEN = st.text("ABCxyz019-._~+/=", min_size=1, max_size=20)
_HEADER = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda scheme, token: f"{scheme} {token}",
        st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "Bearer ", "Token"]),
        _B64TOKEN,
    ),
    st.builds(
        lambda token, tail: f"Bearer {token}{tail}",
        st.sampled_from(sorted(TOKENS.values())),
        st.sampled_from(["", " ", "  ", "x", "=", "\n", " extra", "\x00"]),
    ),
    st.sampled_from(sorted(TOKENS.values())),
)


def _header_shapes(value: str) -> list[str]:
    """What counts as the caller's secret in a header value: the value and its token part."""
    token = value.split(" ", 1)[-1].strip()
    return [v for v in (value, token) if len(v) >= 6]


def test_authorize_only_raises_auth_errors_and_never_echoes() -> None:
    """Random Authorization values are a token record, Unauthenticated or PermissionDenied,
    and an error message never contains what the caller sent."""
    seen: Counter[str] = Counter()

    @FUZZ
    @given(method=st.sampled_from(METHODS), headers=st.lists(_HEADER, max_size=3))
    def check(method: str, headers: list[str]) -> None:
        auth = Authenticator(RECORDS)
        outcome: TokenRecord | Exception
        try:
            outcome = auth.authorize(method, headers)
        except (Unauthenticated, PermissionDenied) as exc:
            outcome = exc
        seen[type(outcome).__name__] += 1
        if isinstance(outcome, Exception):
            message = str(outcome)
            assert message in FIXED_MESSAGES or SCOPE_MESSAGE.fullmatch(message), message
            for value in headers:
                for secret in _header_shapes(value):
                    assert secret not in message, (secret, message)
            return
        # Success only for one well-formed header carrying a known token with the scope.
        assert len(headers) == 1
        assert TOKENS[outcome.name] in headers[0]
        assert METHOD_SCOPES[method] in outcome.scopes

    check()
    assert set(seen) == {"TokenRecord", "Unauthenticated", "PermissionDenied"}, seen


def test_parse_lookup_only_raises_invalid_argument() -> None:
    """Any checkpoint_id is a lookup by id, a lookup by a valid display name, or INVALID_ARGUMENT
    naming checkpoint_id."""
    seen: Counter[str] = Counter()

    @FUZZ
    @given(
        raw=st.one_of(
            st.text(max_size=140),
            st.text("ab-/ \t\x00\u2028", max_size=10),
            st.text("0123456789abcdefABCDEF-", min_size=36, max_size=36),
            st.uuids().map(str).map(str.upper),
        )
    )
    def check(raw: str) -> None:
        outcome: Lookup | InvalidArgument
        try:
            outcome = parse_lookup(raw)
        except InvalidArgument as exc:
            outcome = exc
        seen[type(outcome).__name__] += 1
        if isinstance(outcome, InvalidArgument):
            assert [v.field for v in outcome.violations] == ["checkpoint_id"]
        elif isinstance(outcome, ById):
            assert is_uuid_form(raw)
            assert outcome.id == raw.lower()
        else:
            assert outcome.display_name == raw
            # The contract's display-name rules: 1-128 characters, no control characters,
            # no "/", no surrounding white space, not UUID-shaped.
            assert validate_display_name(raw) == []
            assert 1 <= len(raw) <= 128
            assert "/" not in raw
            assert raw == raw.strip()
            assert not any(unicodedata.category(ch) == "Cc" for ch in raw)

    check()
    assert set(seen) == {"ById", "ByName", "InvalidArgument"}, seen


@FUZZ
@given(value=st.uuids(), case_mask=st.lists(st.booleans(), min_size=36, max_size=36))
def test_uuid_form_is_always_by_id_in_lowercase(value: uuid.UUID, case_mask: list[bool]) -> None:
    """A UUID in any mix of letter cases is looked up by its lowercase id."""
    text = "".join(ch.upper() if up else ch for ch, up in zip(str(value), case_mask, strict=True))
    assert parse_lookup(text) == ById(str(value))
