"""Unit tests of server.tokens: creating tokens, the file's mode and format, and load errors."""

from __future__ import annotations

import hashlib
import json
import logging
import stat
from pathlib import Path

import pytest

from server.tokens import (
    READ_SCOPE,
    TOKEN_PREFIX,
    WRITE_SCOPE,
    TokenRecord,
    TokensFileError,
    create_token,
    hash_token,
    load_tokens,
)

HASH_A = "a" * 64


def _write_json(path: Path, value: object) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    path.chmod(0o600)
    return path


def test_hash_token_is_hex_sha256() -> None:
    """hash_token is the lowercase hex SHA-256 of the token's UTF-8 bytes."""
    assert hash_token("secret") == hashlib.sha256(b"secret").hexdigest()


def test_create_token_writes_mode_0600(tmp_path: Path) -> None:
    """A new tokens file is readable and writable by its owner only."""
    path = tmp_path / "tokens.json"
    create_token(path, "ci", [READ_SCOPE])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not (tmp_path / "tokens.json.tmp").exists()


def test_create_token_stores_only_the_hash(tmp_path: Path) -> None:
    """The file keeps the token's SHA-256, name and scopes, never the token itself."""
    path = tmp_path / "tokens.json"
    token = create_token(path, "ci", [WRITE_SCOPE, READ_SCOPE])
    text = path.read_text(encoding="utf-8")
    assert token.startswith(TOKEN_PREFIX)
    assert token not in text
    assert token[len(TOKEN_PREFIX) :] not in text
    assert json.loads(text) == {
        "tokens": [{"name": "ci", "sha256": hash_token(token), "scopes": [READ_SCOPE, WRITE_SCOPE]}]
    }


def test_create_token_round_trips_through_load(tmp_path: Path) -> None:
    """Created tokens load back keyed by their hash, earlier ones kept."""
    path = tmp_path / "tokens.json"
    first = create_token(path, "reader", [READ_SCOPE])
    second = create_token(path, "writer", [WRITE_SCOPE])
    assert first != second
    assert load_tokens(path) == {
        hash_token(first): TokenRecord("reader", hash_token(first), frozenset({READ_SCOPE})),
        hash_token(second): TokenRecord("writer", hash_token(second), frozenset({WRITE_SCOPE})),
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_create_token_refuses_duplicate_name(tmp_path: Path) -> None:
    """A second token with a name already in use is refused and the file is unchanged."""
    path = tmp_path / "tokens.json"
    create_token(path, "ci", [READ_SCOPE])
    before = path.read_bytes()
    with pytest.raises(TokensFileError, match="a token named 'ci' already exists"):
        create_token(path, "ci", [WRITE_SCOPE])
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "scopes",
    [
        pytest.param([], id="none"),
        pytest.param(["checkpoints:admin"], id="unknown"),
        pytest.param([READ_SCOPE, "read"], id="one-unknown"),
    ],
)
def test_create_token_refuses_bad_scope(tmp_path: Path, scopes: list[str]) -> None:
    """No scope or an unknown scope is refused, naming the scopes allowed, and no file appears."""
    path = tmp_path / "tokens.json"
    with pytest.raises(TokensFileError, match="checkpoints:read, checkpoints:write"):
        create_token(path, "ci", scopes)
    assert not path.exists()


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param("a" * 65, id="too-long"),
        pytest.param("has space", id="space"),
        pytest.param("-leading", id="leading-dash"),
    ],
)
def test_create_token_refuses_bad_name(tmp_path: Path, name: str) -> None:
    """A token name outside 1-64 letters, digits, '.', '_' or '-' is refused."""
    with pytest.raises(TokensFileError, match="token name must be"):
        create_token(tmp_path / "tokens.json", name, [READ_SCOPE])


def test_load_tokens_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    """A missing file names itself and the command that creates a token."""
    path = tmp_path / "absent.json"
    with pytest.raises(TokensFileError) as caught:
        load_tokens(path)
    message = str(caught.value)
    assert f"tokens file {path} does not exist" in message
    assert f"checkpoint-server token create --tokens {path}" in message


def test_load_tokens_bad_json(tmp_path: Path) -> None:
    """A file that is not JSON is reported as unreadable, naming the file."""
    path = tmp_path / "tokens.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(TokensFileError, match=f"cannot read tokens file {path}"):
        load_tokens(path)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param([], r'expected \{"tokens": \[\.\.\.\]\}', id="top-level-list"),
        pytest.param({"tokens": {}}, r'expected \{"tokens": \[\.\.\.\]\}', id="tokens-not-list"),
        pytest.param({"tokens": ["x"]}, r"entry 0: expected an object", id="entry-not-object"),
        pytest.param(
            {"tokens": [{"name": "a b", "sha256": HASH_A, "scopes": [READ_SCOPE]}]},
            r"entry 0: name must be",
            id="bad-name",
        ),
        pytest.param(
            {"tokens": [{"name": "a", "sha256": "A" * 64, "scopes": [READ_SCOPE]}]},
            r"entry 0: sha256 must be 64 lowercase hex digits",
            id="uppercase-hash",
        ),
        pytest.param(
            {"tokens": [{"name": "a", "sha256": "ab", "scopes": [READ_SCOPE]}]},
            r"entry 0: sha256 must be",
            id="short-hash",
        ),
        pytest.param(
            {"tokens": [{"name": "a", "sha256": HASH_A, "scopes": READ_SCOPE}]},
            r"entry 0: scopes must be a list of strings",
            id="scopes-not-list",
        ),
        pytest.param(
            {"tokens": [{"name": "a", "sha256": HASH_A, "scopes": ["root"]}]},
            r"entry 0: unknown scopes \['root'\]",
            id="unknown-scope",
        ),
        pytest.param(
            {
                "tokens": [
                    {"name": "a", "sha256": HASH_A, "scopes": [READ_SCOPE]},
                    {"name": "b", "sha256": HASH_A, "scopes": [WRITE_SCOPE]},
                ]
            },
            r"the same token hash appears twice",
            id="duplicate-hash",
        ),
        pytest.param(
            {
                "tokens": [
                    {"name": "a", "sha256": HASH_A, "scopes": [READ_SCOPE]},
                    {"name": "b", "sha256": "b" * 64},
                ]
            },
            r"entry 1: scopes must be",
            id="second-entry-no-scopes",
        ),
    ],
)
def test_load_tokens_malformed_is_clear(tmp_path: Path, content: object, problem: str) -> None:
    """A malformed file is refused with a message naming the file, the entry and the problem."""
    path = _write_json(tmp_path / "tokens.json", content)
    with pytest.raises(TokensFileError, match=problem) as caught:
        load_tokens(path)
    assert str(path) in str(caught.value)


def test_load_tokens_warns_when_others_can_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A tokens file readable by other users loads but logs a chmod hint."""
    path = _write_json(tmp_path / "tokens.json", {"tokens": []})
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="server.tokens"):
        assert load_tokens(path) == {}
    assert any("chmod 600" in r.getMessage() for r in caplog.records)


def test_load_tokens_quiet_for_private_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A mode-0600 tokens file logs no warning."""
    path = _write_json(tmp_path / "tokens.json", {"tokens": []})
    with caplog.at_level(logging.WARNING, logger="server.tokens"):
        load_tokens(path)
    assert caplog.records == []
