"""gzip both ways: responses through Starlette's GZipMiddleware, request bodies decoded here.

Responses of at least MIN_GZIP_BYTES are compressed when Accept-Encoding allows gzip (the
middleware does the framing and `Vary: Accept-Encoding`). A request body with
`Content-Encoding: gzip` is inflated as it arrives, never past the body limit: the limit
applies to the decompressed size, so a gzip bomb is 413 after at most limit + 1 bytes of
output. Any other content coding is 415 with `Accept-Encoding: gzip` (RFC 9110 §15.5.16).
"""

from __future__ import annotations

import dataclasses
import zlib

from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp

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
    return GZipMiddleware(
        app, minimum_size=MIN_GZIP_BYTES, compresslevel=COMPRESS_LEVEL, exclude_content_types=()
    )


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
