"""Unit tests of server.auth: bearer parsing, token lookup and the scope each method needs."""

from __future__ import annotations

import pytest

from server.auth import METHOD_SCOPES, OPEN_PREFIXES, SERVICE, Authenticator
from server.errors import PermissionDenied, Unauthenticated
from server.tokens import TokenRecord, hash_token

READ_TOKEN = "ckpt_read-token"
WRITE_TOKEN = "ckpt_write-token"
BOTH_TOKEN = "ckpt_both+/token=="
READ = "checkpoints:read"
WRITE = "checkpoints:write"

# Copied from api-contract.md ("Who may do what"): read allows Get and List; write allows
# Create, Update and Delete. Kept separate from METHOD_SCOPES so a change there must be deliberate.
EXPECTED_SCOPES: dict[str, str] = {
    "/checkpoint.v1.CheckpointService/GetCheckpoint": READ,
    "/checkpoint.v1.CheckpointService/ListCheckpoints": READ,
    "/checkpoint.v1.CheckpointService/WatchCheckpoints": READ,
    "/checkpoint.v1.CheckpointService/CreateCheckpoint": WRITE,
    "/checkpoint.v1.CheckpointService/UpdateCheckpoint": WRITE,
    "/checkpoint.v1.CheckpointService/DeleteCheckpoint": WRITE,
}
GET = "/checkpoint.v1.CheckpointService/GetCheckpoint"
CREATE = "/checkpoint.v1.CheckpointService/CreateCheckpoint"


def _record(name: str, token: str, *scopes: str) -> TokenRecord:
    return TokenRecord(name=name, sha256=hash_token(token), scopes=frozenset(scopes))


@pytest.fixture
def auth() -> Authenticator:
    """An authenticator knowing a read-only, a write-only and a read-write token."""
    records = [
        _record("reader", READ_TOKEN, READ),
        _record("writer", WRITE_TOKEN, WRITE),
        _record("both", BOTH_TOKEN, READ, WRITE),
    ]
    return Authenticator({r.sha256: r for r in records})


def test_method_scopes_match_the_contract() -> None:
    """METHOD_SCOPES is exactly the contract's table of methods and scopes."""
    assert METHOD_SCOPES == EXPECTED_SCOPES
    assert SERVICE == "checkpoint.v1.CheckpointService"


def test_open_prefixes_cover_health_and_reflection() -> None:
    """Health and both reflection services are open; the checkpoint service is not."""
    assert set(OPEN_PREFIXES) == {
        "/grpc.health.v1.Health/",
        "/grpc.reflection.v1.ServerReflection/",
        "/grpc.reflection.v1alpha.ServerReflection/",
    }
    assert not any(m.startswith(OPEN_PREFIXES) for m in EXPECTED_SCOPES)


@pytest.mark.parametrize(
    ("method", "token", "allowed"),
    [
        pytest.param(method, token, scope in scopes, id=f"{method.rsplit('/', 1)[1]}-{label}")
        for method, scope in EXPECTED_SCOPES.items()
        for label, token, scopes in [
            ("reader", READ_TOKEN, {READ}),
            ("writer", WRITE_TOKEN, {WRITE}),
            ("both", BOTH_TOKEN, {READ, WRITE}),
        ]
    ],
)
def test_scopes_decide(auth: Authenticator, method: str, token: str, allowed: bool) -> None:
    """A token with the method's scope passes; a known token without it is PERMISSION_DENIED."""
    if allowed:
        record = auth.authorize(method, [f"Bearer {token}"])
        assert record.sha256 == hash_token(token)
        return
    with pytest.raises(PermissionDenied) as caught:
        auth.authorize(method, [f"Bearer {token}"])
    assert EXPECTED_SCOPES[method] in caught.value.message
    assert token not in caught.value.message


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        pytest.param([], "missing bearer token", id="missing"),
        pytest.param([""], "malformed authorization header", id="empty-value"),
        pytest.param(["Bearer"], "malformed authorization header", id="no-token"),
        pytest.param(["Bearer "], "malformed authorization header", id="blank-token"),
        pytest.param([READ_TOKEN], "malformed authorization header", id="no-scheme"),
        pytest.param([f"Basic {READ_TOKEN}"], "malformed authorization header", id="basic"),
        pytest.param([f"Bearer {READ_TOKEN} x"], "malformed authorization header", id="two-words"),
        pytest.param([f"Bearer\t{READ_TOKEN}"], "malformed authorization header", id="tab"),
        pytest.param(
            [f"Bearer {READ_TOKEN}", f"Bearer {READ_TOKEN}"],
            "malformed authorization header",
            id="two-headers",
        ),
        pytest.param(["Bearer ckpt_unknown"], "invalid bearer token", id="unknown-token"),
        pytest.param(
            [f"Bearer {READ_TOKEN.upper()}"], "invalid bearer token", id="token-is-case-sensitive"
        ),
    ],
)
def test_unauthenticated(auth: Authenticator, headers: list[str], message: str) -> None:
    """No token, a malformed header, two headers or an unknown token is UNAUTHENTICATED."""
    with pytest.raises(Unauthenticated) as caught:
        auth.authorize(GET, headers)
    assert message in caught.value.message
    assert READ_TOKEN not in caught.value.message


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(f"Bearer {READ_TOKEN}", id="title"),
        pytest.param(f"bearer {READ_TOKEN}", id="lower"),
        pytest.param(f"BEARER {READ_TOKEN}", id="upper"),
        pytest.param(f"bEaReR {READ_TOKEN}", id="mixed"),
        pytest.param(f"Bearer   {READ_TOKEN}", id="several-spaces"),
        pytest.param(f"Bearer {READ_TOKEN} ", id="trailing-space"),
    ],
)
def test_bearer_scheme_is_case_insensitive(auth: Authenticator, header: str) -> None:
    """The scheme "Bearer" matches in any letter case, with one or more spaces before the token."""
    assert auth.authorize(GET, [header]).name == "reader"


def test_token_with_base64_characters(auth: Authenticator) -> None:
    """A b64token may hold '+', '/' and trailing '='."""
    assert auth.authorize(CREATE, [f"Bearer {BOTH_TOKEN}"]).name == "both"


@pytest.mark.parametrize(
    "method",
    [
        pytest.param("/checkpoint.v1.CheckpointService/PurgeEverything", id="new-method"),
        pytest.param("/other.Service/GetCheckpoint", id="other-service"),
    ],
)
def test_method_without_scope_is_closed(auth: Authenticator, method: str) -> None:
    """A method missing from METHOD_SCOPES is refused even for a token with every scope."""
    with pytest.raises(PermissionDenied, match="a scope no token has"):
        auth.authorize(method, [f"Bearer {BOTH_TOKEN}"])


def test_authentication_comes_before_scope(auth: Authenticator) -> None:
    """An unknown token is UNAUTHENTICATED even for a method no token may call."""
    with pytest.raises(Unauthenticated):
        auth.authorize("/x.Y/Z", ["Bearer nope"])


def test_a_header_seen_before_answers_as_the_first_time(auth: Authenticator) -> None:
    """The second call with a header (answered without parsing it again) still checks the
    method's scope, and a second value still makes the header malformed."""
    header = f"Bearer {READ_TOKEN}"
    for _ in range(2):
        assert auth.authorize(GET, [header]).name == "reader"
        with pytest.raises(PermissionDenied, match="lacks the scope checkpoints:write"):
            auth.authorize(CREATE, [header])
        with pytest.raises(Unauthenticated, match="malformed authorization header"):
            auth.authorize(GET, [header, header])
    for _ in range(2):
        with pytest.raises(Unauthenticated, match="invalid bearer token"):
            auth.authorize(GET, ["Bearer ckpt_unknown"])
