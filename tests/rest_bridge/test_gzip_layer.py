"""The bridge's gzip layer sends what Starlette's GZipMiddleware would, message for message.

rest_bridge.compression serves requests that do not accept gzip without the middleware's
per-request set-up; these tests hold it to the middleware's answers for every response shape
the bridge (or an app behind it) can produce.
"""

from __future__ import annotations

import gzip

import pytest
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rest_bridge.compression import COMPRESS_LEVEL, MIN_GZIP_BYTES, gzip_responses

Response = tuple[int, list[tuple[bytes, bytes]], list[tuple[bytes, bool]]]
"""Status, headers, and the body's chunks (bytes, more_body)."""

_JSON = (b"content-type", b"application/json")
RESPONSES: dict[str, Response] = {
    "small": (200, [_JSON, (b"content-length", b"2")], [(b"{}", False)]),
    "at the threshold": (
        200,
        [_JSON, (b"content-length", str(MIN_GZIP_BYTES).encode())],
        [(b"x" * MIN_GZIP_BYTES, False)],
    ),
    "large with a vary": (
        200,
        [_JSON, (b"vary", b"Origin"), (b"content-length", b"5000")],
        [(b"y" * 5000, False)],
    ),
    "streamed": (200, [(b"content-type", b"text/event-stream")], [(b"a", True), (b"b", False)]),
    "already encoded": (
        200,
        [(b"content-encoding", b"br"), (b"content-length", b"3000")],
        [(b"z" * 3000, False)],
    ),
    "partial": (206, [(b"content-length", b"3000")], [(b"p" * 3000, False)]),
    "not modified": (304, [(b"etag", b'"1"')], [(b"", False)]),
    "no headers": (200, [], [(b"n" * 2000, False)]),
}
ACCEPTS = {
    "none": [],
    "identity": [(b"accept-encoding", b"identity")],
    "gzip": [(b"accept-encoding", b"gzip, deflate")],
    "gzip only second": [(b"accept-encoding", b"br"), (b"accept-encoding", b"gzip")],
}


def _app(response: Response) -> ASGIApp:
    status, headers, chunks = response

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": list(headers)})
        for body, more in chunks:
            await send({"type": "http.response.body", "body": body, "more_body": more})

    return app


async def _sent(app: ASGIApp, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers}
    await app(scope, receive, send)
    return sent


@pytest.mark.anyio
@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("shape", RESPONSES)
async def test_answers_are_starlettes(shape: str, accept: str) -> None:
    """Same messages, same header order, same bytes as GZipMiddleware with our settings."""
    response, headers = RESPONSES[shape], ACCEPTS[accept]
    reference = GZipMiddleware(
        _app(response),
        minimum_size=MIN_GZIP_BYTES,
        compresslevel=COMPRESS_LEVEL,
        exclude_content_types=(),
    )
    expected = await _sent(reference, headers)
    got = await _sent(gzip_responses(_app(response)), headers)
    assert got == expected
    if accept == "gzip" and shape == "large with a vary":
        # The comparison is not vacuous: this one is compressed, and says so.
        start, body = got
        assert (b"content-encoding", b"gzip") in start["headers"]
        assert gzip.decompress(body["body"]) == b"y" * 5000
    if accept == "none" and shape == "at the threshold":
        assert (b"vary", b"Accept-Encoding") in got[0]["headers"]
