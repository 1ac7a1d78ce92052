"""The tokens file: names, SHA-256 hashes and scopes. A token itself is shown once and never kept.

Format (JSON, mode 0600):
    {"tokens": [{"name": "ci", "sha256": "<64 hex>", "scopes": ["checkpoints:read"]}]}
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

READ_SCOPE = "checkpoints:read"
WRITE_SCOPE = "checkpoints:write"
SCOPES = frozenset({READ_SCOPE, WRITE_SCOPE})
TOKEN_PREFIX = "ckpt_"  # noqa: S105 (a prefix that makes leaked tokens easy to grep for)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class TokensFileError(ValueError):
    """The tokens file is missing, unreadable or malformed; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class TokenRecord:
    name: str
    sha256: str
    scopes: frozenset[str]


def hash_token(token: str) -> str:
    """The hex SHA-256 that the tokens file stores for a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def load_tokens(path: Path) -> dict[str, TokenRecord]:
    """The tokens of a file, keyed by their hash.

    Raises:
        TokensFileError: the file is missing or not in the documented format.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TokensFileError(
            f"tokens file {path} does not exist; create a token with: checkpoint-server token "
            f"create --tokens {path} --name NAME --scope {READ_SCOPE}"
        ) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokensFileError(f"cannot read tokens file {path}: {exc}") from exc
    _warn_if_shared(path)
    entries = raw.get("tokens") if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        raise TokensFileError(f'tokens file {path}: expected {{"tokens": [...]}}')
    records: dict[str, TokenRecord] = {}
    for index, entry in enumerate(entries):
        record = _parse_entry(entry, f"tokens file {path}, entry {index}")
        if record.sha256 in records:
            raise TokensFileError(f"tokens file {path}: the same token hash appears twice")
        records[record.sha256] = record
    return records


def create_token(path: Path, name: str, scopes: Iterable[str]) -> str:
    """Add a new random token to the tokens file (created with mode 0600) and return it.

    Raises:
        TokensFileError: bad name or scope, a name already in use, or an unreadable file.
    """
    wanted = frozenset(scopes)
    if not _NAME.fullmatch(name):
        raise TokensFileError(
            "token name must be 1-64 characters of letters, digits, '.', '_' or '-'"
        )
    if not wanted or not wanted <= SCOPES:
        raise TokensFileError(f"scopes must be one or more of: {', '.join(sorted(SCOPES))}")
    existing = load_tokens(path) if path.exists() else {}
    if any(r.name == name for r in existing.values()):
        raise TokensFileError(f"a token named {name!r} already exists in {path}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = TokenRecord(name=name, sha256=hash_token(token), scopes=wanted)
    _write(path, [*existing.values(), record])
    return token


def _parse_entry(entry: object, where: str) -> TokenRecord:
    if not isinstance(entry, Mapping):
        raise TokensFileError(f"{where}: expected an object with name, sha256 and scopes")
    name, digest, scopes = entry.get("name"), entry.get("sha256"), entry.get("scopes")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise TokensFileError(f"{where}: name must be 1-64 letters, digits, '.', '_' or '-'")
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise TokensFileError(f"{where}: sha256 must be 64 lowercase hex digits")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise TokensFileError(f"{where}: scopes must be a list of strings")
    unknown = set(scopes) - SCOPES
    if unknown:
        raise TokensFileError(f"{where}: unknown scopes {sorted(unknown)}")
    return TokenRecord(name=name, sha256=digest, scopes=frozenset(scopes))


def _write(path: Path, records: list[TokenRecord]) -> None:
    body = {
        "tokens": [
            {"name": r.name, "sha256": r.sha256, "scopes": sorted(r.scopes)} for r in records
        ]
    }
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(body, out, indent=2)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _warn_if_shared(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "tokens file %s can be read by other users (mode %o); run: chmod 600 %s",
            path,
            stat.S_IMODE(mode),
            path,
        )
