"""CORS for browser pages on other origins: off unless origins are configured (--cors-origin).

Written here rather than with Starlette's CORSMiddleware, which answers every preflight with
one fixed method list and refuses in plain text: here a preflight lists the methods bound to
its path (from the route table), and every refusal is the contract's envelope.

- A preflight (OPTIONS with Origin and Access-Control-Request-Method) from an allowed origin is
  204 with the path's methods, ALLOW_HEADERS and a max age; on a path without routes it goes
  on to the app (404). From an origin not allowed it is 403 permission_denied, with no CORS
  headers, so the browser blocks the call and a person reading the answer learns why.
- Every other response to an allowed origin gets Access-Control-Allow-Origin and
  EXPOSE_HEADERS; to any other origin, no CORS header (the browser keeps it from the page).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterable, Sequence

import grpc
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rest_bridge.metadata import request_id
from rest_bridge.status import ApiError

ANY_ORIGIN = "*"
ALLOW_HEADERS = (
    "Authorization",
    "Content-Type",
    "X-Request-Id",
    "Grpc-Timeout",
    "traceparent",
    "If-Match",
    "If-None-Match",
    "Idempotency-Key",
)
EXPOSE_HEADERS = ("X-Request-Id", "Retry-After", "ETag", "WWW-Authenticate")
MAX_AGE_SECONDS = 600
_ORIGIN = re.compile(
    r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)

Methods = Callable[[str], Sequence[str]]
"""The methods bound to a raw path, [] when none is."""


def parse_origins(text: str) -> tuple[str, ...]:
    """Origins from a flag or a comma-separated environment value: `*` or scheme://host[:port].

    Raises:
        argparse.ArgumentTypeError: an entry is not an origin (a path, a trailing slash, ...).
    """
    origins: list[str] = []
    for part in text.split(","):
        origin = part.strip()
        if not origin:
            continue
        if origin != ANY_ORIGIN and _ORIGIN.fullmatch(origin) is None:
            raise argparse.ArgumentTypeError(
                f"{origin!r} is not an origin: give * or scheme://host[:port], e.g. "
                "https://app.example.com (no path, no trailing slash)"
            )
        origins.append(origin.lower())
    return tuple(origins)


class OriginsAction(argparse.Action):
    """--cors-origin, repeatable: flags on the command line replace the environment's list."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[object] | None,
        option_string: str | None = None,
    ) -> None:
        current = getattr(namespace, self.dest, None)
        kept = () if current is self.default or not isinstance(current, tuple) else current
        added = values if isinstance(values, tuple) else ()
        setattr(namespace, self.dest, (*kept, *added))


class Cors:
    """The CORS layer in front of the bridge (install only when origins are configured)."""

    def __init__(self, app: ASGIApp, origins: Iterable[str], methods: Methods) -> None:
        self.app, self.methods = app, methods
        found = frozenset(origins)
        self.any_origin = ANY_ORIGIN in found
        self.origins = found - {ANY_ORIGIN}
        self._expose = ", ".join(EXPOSE_HEADERS).encode()
        self._allow_headers = ", ".join(ALLOW_HEADERS).encode()

    def allowed(self, origin: str) -> bool:
        return self.any_origin or origin.lower() in self.origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = preflight_method = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"access-control-request-method":
                preflight_method = value
        if origin is None:
            await self.app(scope, receive, send)
            return
        preflight = scope["method"] == "OPTIONS" and preflight_method is not None
        if preflight and await self._preflight(scope, send, origin):
            return
        if self.allowed(origin):
            extra = [
                *self._origin_headers(origin),
                (b"access-control-expose-headers", self._expose),
            ]
        else:
            extra = [(b"vary", b"Origin")]  # the answer depends on the origin: caches must know

        async def send_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": _with(message.get("headers", []), extra)}
            await send(message)

        await self.app(scope, receive, send_cors)

    async def _preflight(self, scope: Scope, send: Send, origin: str) -> bool:
        """Answer a preflight; False when its path has no routes (the app answers 404)."""
        rid = request_id(_header(scope, b"x-request-id"))
        if not self.allowed(origin):
            error = ApiError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"origin {origin[:100]!r} is not allowed to call this API from a browser "
                "(--cors-origin)",
            )
            headers, body = error.render(False, rid)
            raw = [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()]
            raw += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
            await send({"type": "http.response.start", "status": error.status, "headers": raw})
            await send({"type": "http.response.body", "body": body})
            return True
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        methods = self.methods(raw_path.decode("latin-1"))
        if not methods:
            return False
        answer = [
            *self._origin_headers(origin),
            (b"access-control-allow-methods", ", ".join(methods).encode()),
            (b"access-control-allow-headers", self._allow_headers),
            (b"access-control-max-age", str(MAX_AGE_SECONDS).encode()),
            (b"x-request-id", rid.encode()),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": answer})
        await send({"type": "http.response.body", "body": b""})
        return True

    def _origin_headers(self, origin: str) -> list[tuple[bytes, bytes]]:
        if self.any_origin:
            return [(b"access-control-allow-origin", b"*")]
        return [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


def _with(
    headers: Iterable[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """headers plus extra; a Vary already there is extended rather than repeated."""
    out = list(headers)
    for name, value in extra:
        index = next((i for i, (n, _) in enumerate(out) if n.lower() == name), None)
        if name == b"vary" and index is not None:
            out[index] = (out[index][0], out[index][1] + b", " + value)
        else:
            out.append((name, value))
    return out
