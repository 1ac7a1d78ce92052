"""The ASGI http scope of an HTTP/2 request, from its header list, checked in one pass.

h2's own inbound checks and normalisation are off (rest_bridge.http2): they cost ~15 % of an
h2c request, walking the list several times. The same rules are applied here, once: a list that
breaks them is malformed, answered 400 in the envelope on its stream (h2 would have closed the
whole connection). Header lists that repeat are checked once (a bounded cache). The scope
follows uvicorn's for HTTP/1.1 (path decoded once, raw_path and
query_string as sent, `host` from :authority when the client sent none).
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any, NamedTuple

DROPPED = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
"""Connection-specific headers HTTP/2 forbids (RFC 9113 section 8.2.2): dropped from answers,
malformed in requests."""
_PSEUDO = frozenset({b":method", b":scheme", b":path", b":authority"})
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
"""A lowercase header name (RFC 9110 token)."""
_BAD_VALUE = re.compile(rb"[\x00\r\n]|\A[ \t]|[ \t]\Z")


CHECKED_MAX = 256
"""Header lists whose checked form is kept (a list of at most KEPT_BYTES)."""
KEPT_BYTES = 4096
_checked: dict[tuple[tuple[bytes, bytes], ...], _Checked | None] = {}
"""Checked forms by header list: the checks are a pure function of the list, and a client's
requests on a connection (h2load's, a browser's polling) often repeat it exactly."""


class _Checked(NamedTuple):
    method: str
    path: str
    raw_path: bytes
    query: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    length: int | None
    """The declared content-length (None when there is none)."""


def request_scope(
    headers: list[tuple[bytes, bytes]],
    scheme: str,
    client: tuple[str, int] | None,
    server: tuple[str, int] | None,
    size: int = KEPT_BYTES + 1,
) -> tuple[dict[str, Any], int | None] | None:
    """The request's ASGI scope and declared content-length; None when the header list is
    malformed (see _check). size is the list's size as HPACK counts it; a list of at most
    KEPT_BYTES is checked once."""
    if size <= KEPT_BYTES:
        key = tuple(headers)
        try:
            checked = _checked[key]
        except KeyError:
            checked = _check(headers)
            if len(_checked) >= CHECKED_MAX:
                _checked.clear()
            _checked[key] = checked
    else:
        checked = _check(headers)
    if checked is None:
        return None
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "2",
        "method": checked.method,
        "scheme": scheme,
        "path": checked.path,
        "raw_path": checked.raw_path,
        "query_string": checked.query,
        "root_path": "",
        "headers": list(checked.headers),
        "client": client,
        "server": server,
        "state": {},
    }
    return scope, checked.length


def _check(headers: list[tuple[bytes, bytes]]) -> _Checked | None:
    """The request's method, path and regular headers; None when the header list is malformed
    (RFC 9113 8.2-8.3: pseudo-headers first, known and once each; lowercase token names; no
    connection-specific header; no NUL, CR, LF or surrounding whitespace in a value; host equal
    to :authority; content-length digits only, and the same if repeated)."""
    pseudo: dict[bytes, bytes] = {}
    regular: list[tuple[bytes, bytes]] = []
    host = length = None
    for name, value in headers:
        if _BAD_VALUE.search(value) is not None:
            return None
        if name[:1] == b":":
            if regular or name not in _PSEUDO or name in pseudo:
                return None
            pseudo[name] = value
            continue
        if _TOKEN.fullmatch(name) is None or name in DROPPED:
            return None
        if name == b"te" and value != b"trailers":
            return None
        if name == b"host":
            host = value
        elif name == b"content-length":
            if not value.isdigit() or (length is not None and _length(value) != length):
                return None
            length = _length(value)
        regular.append((name, value))
    target, authority = pseudo.get(b":path", b""), pseudo.get(b":authority")
    try:
        method = pseudo[b":method"].decode("ascii")
        raw_path, _, query = target.partition(b"?")
        path = raw_path.decode("ascii")
    except (KeyError, UnicodeDecodeError):
        return None
    if not path.startswith("/") or b":scheme" not in pseudo:
        return None
    if authority is not None:
        if host is None:
            regular.insert(0, (b"host", authority))
        elif host != authority:
            return None
    path = urllib.parse.unquote(path) if "%" in path else path
    return _Checked(method, path, raw_path, query, tuple(regular), length)


LENGTH_CAP = 10**18
"""Declared lengths from here up are all one "too large" (int() of a long digit string would
be slow, and past 4300 digits refused); no body limit comes near it."""


def _length(digits: bytes) -> int:
    significant = digits.lstrip(b"0")
    return int(significant or b"0") if len(significant) <= 18 else LENGTH_CAP
