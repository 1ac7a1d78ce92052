"""How the bridge is served: uvicorn's settings behind the edge (limits, TLS, HTTP/2), who owns
the signals, and binding the listener.

One place for all of it, whichever process serves the bridge: `checkpoint-rest-bridge`,
`checkpoint-server serve --rest-listen`, or `make bench`'s constant-JSON baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

from rest_bridge.edge import edge_protocol
from rest_bridge.edge_io import EdgeLimits


class ManagedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the process's main loop owns SIGTERM/SIGINT.

    uvicorn's handlers re-raise the signal after a graceful stop, so the process would end
    "killed by SIGTERM" instead of exiting 0.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def uvicorn_config(
    app: ASGIApp,
    host: str,
    port: int,
    limits: EdgeLimits | None = None,
    tls: ssl.SSLContext | None = None,
) -> uvicorn.Config:
    """The ASGI server settings of the bridge: uvicorn behind the edge (rest_bridge.edge).

    TLS is the edge's (its handshake is bounded by the header timeout), so uvicorn's own ssl
    settings stay off; limits and tls belong to this one listener.
    """
    limits = limits or EdgeLimits()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        # Logging is the process's (rest_bridge.logs): no handlers or levels of uvicorn's own,
        # and its access log is replaced by rest_bridge.access_log.
        log_config=None,
        log_level=None,
        access_log=False,
        http=edge_protocol(limits, tls),
        timeout_keep_alive=int(limits.keep_alive),
        # No WebSocket: an upgrade request is served as plain HTTP (a 404/405 envelope).
        ws="none",
        lifespan="off",
        timeout_graceful_shutdown=10,
        server_header=False,
    )


STARTUP_TIMEOUT = 10.0
"""Seconds a background server may take to start before start_in_background gives up."""


def split_listen(listen: str, flag: str = "--listen") -> tuple[str, int]:
    """HOST and PORT of a HOST:PORT listen address ([::1]:80 for IPv6).

    Raises:
        ValueError: listen is not HOST:PORT; the message names flag.
    """
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{flag} must be HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


@dataclass
class BackgroundServer:
    """An ASGI app served by uvicorn as a task of the running event loop."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    host: str
    port: int

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (uvicorn's graceful timeout), return."""
        self.server.should_exit = True
        await self.task


def bind(listen: str, flag: str, reuse_port: bool = False) -> socket.socket:
    """A socket bound to listen (port 0 picks a free one); SO_REUSEPORT lets the other workers
    of `--workers N` bind the same port.

    Raises:
        RuntimeError: listen is not HOST:PORT or cannot be bound.
    """
    try:
        host, port = split_listen(listen, flag)
    except ValueError as exc:
        raise RuntimeError(str(exc)) from exc
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it each response's second write waits out the client's delayed ACK (40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"cannot listen on {listen}: {exc}") from exc
    sock.setblocking(False)
    return sock


async def start_in_background(
    app: ASGIApp,
    listen: str,
    flag: str,
    *,
    limits: EdgeLimits | None = None,
    tls: ssl.SSLContext | None = None,
    reuse_port: bool = False,
) -> BackgroundServer:
    """Serve app on listen (port 0 picks a free one) from this event loop, once it accepts.

    Raises:
        RuntimeError: listen is not HOST:PORT, cannot be bound, or the server did not start.
    """
    sock = bind(listen, flag, reuse_port)
    host, port = split_listen(listen, flag)[0], int(sock.getsockname()[1])
    server = ManagedServer(uvicorn_config(app, host, port, limits, tls))
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"http-{host}:{port}")
    started = time.monotonic()
    while not server.started:
        if task.done() or time.monotonic() - started > STARTUP_TIMEOUT:
            server.should_exit = True
            with contextlib.suppress(Exception, SystemExit):
                await task
            sock.close()
            raise RuntimeError(f"the REST server did not start on {listen}")
        await asyncio.sleep(0.01)
    # What start-up built (modules, schema, app, and in `serve` the store and servicers) lives as
    # long as the process: out of the collector's sight, a full collection walks only what was
    # made since, so its pause under a burst of connections is a fraction of what it was.
    gc.freeze()
    return BackgroundServer(server=server, task=task, host=host, port=port)
