"""How the bridge is served: uvicorn's settings, who owns the signals, and keeping even HTTP
parser errors in the contract's error envelope.

One place for all of it, whichever process serves the bridge: `checkpoint-rest-bridge`,
`checkpoint-server serve --rest-listen`, or `make bench`'s constant-JSON baseline.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# A request the HTTP parser cannot read never reaches the app; uvicorn would answer it in plain
# text. The status stays 400 (the request is not HTTP), the body is the envelope.
MALFORMED_BODY = b'{"error":{"code":"invalid_argument","message":"malformed HTTP request"}}'


class EnvelopeHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering unparseable requests with the JSON envelope."""

    def send_400_response(self, msg: str) -> None:
        # Overrides uvicorn's plain-text answer (HttpToolsProtocol.send_400_response).
        head = [
            b"HTTP/1.1 400 Bad Request\r\n",
            *(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers),
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(MALFORMED_BODY)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + MALFORMED_BODY)
        self.transport.close()


class ManagedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the process's main loop owns SIGTERM/SIGINT.

    uvicorn's handlers re-raise the signal after a graceful stop, so the process would end
    "killed by SIGTERM" instead of exiting 0.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def uvicorn_config(app: ASGIApp, host: str, port: int) -> uvicorn.Config:
    """The ASGI server settings of the bridge."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        http=EnvelopeHttpToolsProtocol,
        # No WebSocket: an upgrade request is served as plain HTTP (a 404/405 envelope).
        ws="none",
        lifespan="off",
        timeout_graceful_shutdown=10,
        server_header=False,
    )
