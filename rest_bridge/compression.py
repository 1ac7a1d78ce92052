"""gzip both ways: responses compressed when the client accepts gzip, request bodies decoded here.

Responses of at least MIN_GZIP_BYTES are compressed when Accept-Encoding allows gzip (Starlette's
GZipResponder does the framing and `Vary: Accept-Encoding`). A request body with
`Content-Encoding: gzip` is inflated as it arrives, never past the body limit: the limit
applies to the decompressed size, so a gzip bomb is 413 after at most limit + 1 bytes of
output. Any other content coding is 415 with `Accept-Encoding: gzip` (RFC 9110 §15.5.16).
"""

from __future__ import annotations

import dataclasses
import zlib

from starlette.datastructures import MutableHeaders
from starlette.middleware.gzip import GZipResponder
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rest_bridge.status import ApiError

MIN_GZIP_BYTES = 1024
COMPRESS_LEVEL = 6
"""zlib's default: most of level 9's savings on JSON at a fraction of its CPU."""
# Every answer of the bridge is JSON, so no content type needs excluding; an empty list also
# spares the middleware re-normalizing its default list on every request.
_IDENTITY = frozenset({"", "identity"})
_GZIP = frozenset({"gzip", "x-gzip"})


def gzip_responses(app: ASGIApp) -> ASGIApp:
    """app with its responses gzip-compressed when the client accepts it and they are large."""
    return GzipResponses(app)


class GzipResponses:
    """Starlette's GZipMiddleware, answer for answer, without its cost on the common request.

    A client that accepts gzip gets Starlette's GZipResponder. Any other request (most API
    clients, and every `make bench` row) gets the same bytes as its IdentityResponder gives,
    through one small closure: its per-request set-up (header views, content-type
    normalisation) was 5-7 % of the in-process REST path's CPU in profiles.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif "gzip" in _accept_encoding(scope):
            responder = GZipResponder(
                self.app, MIN_GZIP_BYTES, compresslevel=COMPRESS_LEVEL, exclude_content_types=()
            )
            await responder(scope, receive, send)
        else:
            await self.app(scope, receive, _identity_send(send))


def _accept_encoding(scope: Scope) -> str:
    """The first Accept-Encoding field, as Starlette's Headers.get reads it."""
    for name, value in scope["headers"]:
        if name == b"accept-encoding":
            return str(value.decode("latin-1"))
    return ""


def _identity_send(send: Send) -> Send:
    """send as Starlette's IdentityResponder wraps it: the start is held until the first body;
    a large or streamed body adds `Vary: Accept-Encoding`; a response that already has a
    Content-Encoding, or is a 206, passes untouched."""
    start: Message = {}
    through = started = False

    async def identity_send(message: Message) -> None:
        nonlocal start, through, started
        kind = message["type"]
        if kind == "http.response.start":
            start = message
            headers = message.setdefault("headers", [])
            through = message["status"] == 206 or any(
                name == b"content-encoding" for name, _ in headers
            )
            if through:
                await send(message)
        elif through and kind in ("http.response.body", "http.response.pathsend"):
            await send(message)
        elif kind == "http.response.body" and not started:
            started = True
            if len(message.get("body", b"")) >= MIN_GZIP_BYTES or message.get("more_body", False):
                MutableHeaders(raw=start["headers"]).add_vary_header("Accept-Encoding")
            await send(start)
            await send(message)
        elif kind in ("http.response.body", "http.response.early_hint", "http.response.trailers"):
            await send(message)
        elif kind == "http.response.pathsend":
            await send(start)
            await send(message)

    return identity_send


def too_large(limit: int) -> ApiError:
    return ApiError.invalid(
        f"request body is larger than the limit of {limit} bytes", http_status=413
    )


class BodyDecoder:
    """Turns the body's chunks as received into the body's bytes, within the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0

    def feed(self, chunk: bytes) -> bytes:
        """Raises: ApiError: the (decoded) body is over the limit (413)."""
        self.size += len(chunk)
        if self.size > self.limit:
            raise too_large(self.limit)
        return chunk

    def finish(self) -> None:
        """Raises: ApiError: the encoded body ended early."""


class GzipBodyDecoder(BodyDecoder):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self._inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)

    def feed(self, chunk: bytes) -> bytes:
        if self._inflate.eof:
            if chunk:
                raise _not_gzip("data after the end of the gzip stream")
            return b""
        try:
            # At most one byte past the limit: enough to know the body is too large.
            out = self._inflate.decompress(chunk, self.limit - self.size + 1)
        except zlib.error as exc:
            raise _not_gzip(str(exc)) from exc
        self.size += len(out)
        if self.size > self.limit:
            raise too_large(self.limit)
        if self._inflate.unused_data:
            raise _not_gzip("data after the end of the gzip stream")
        return out

    def finish(self) -> None:
        if not self._inflate.eof:
            raise _not_gzip("the gzip stream ends early")


def _not_gzip(why: str) -> ApiError:
    return ApiError.invalid(f"request body is not valid gzip: {why}", "Content-Encoding")


def body_decoder(content_encoding: str | None, limit: int) -> BodyDecoder:
    """The decoder for a request's Content-Encoding.

    Raises:
        ApiError: a content coding other than gzip or identity (415).
    """
    coding = (content_encoding or "").strip().lower()
    if coding in _IDENTITY:
        return BodyDecoder(limit)
    if coding in _GZIP:
        return GzipBodyDecoder(limit)
    error = ApiError.invalid(
        f"Content-Encoding {(content_encoding or '')[:50]!r} is not supported; "
        "send gzip or identity",
        "Content-Encoding",
        http_status=415,
    )
    raise dataclasses.replace(error, headers={"Accept-Encoding": "gzip"})
