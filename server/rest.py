"""The REST bridge served from the gRPC server's process: `checkpoint-server serve --rest-listen`.

The bridge app is rest_bridge's, unchanged, with the same uvicorn settings as the separate
`checkpoint-rest-bridge`; only its channel differs: a server.inprocess.LocalChannel, which runs
the server's own guarded handlers without a network hop (readiness included: /readyz asks the
same health servicer the gRPC port answers from).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass

import grpc
import uvicorn

from rest_bridge.app import create_app
from rest_bridge.config import BridgeConfig
from rest_bridge.routes import RouteError
from rest_bridge.schema import SchemaError, default_descriptor_set, load_schema
from rest_bridge.serving import ManagedServer, uvicorn_config

STARTUP_TIMEOUT = 10.0
"""Seconds the in-process REST server may take to start before serve gives up."""


@dataclass
class InProcessRest:
    """The bridge app served by uvicorn in this event loop."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    host: str
    port: int

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (uvicorn's graceful timeout), return."""
        self.server.should_exit = True
        await self.task


async def serve_rest(listen: str, channel: grpc.aio.Channel, config: BridgeConfig) -> InProcessRest:
    """Start the REST bridge on listen (port 0 picks a free one), calling through channel.

    Raises:
        RuntimeError: listen is not HOST:PORT, cannot be bound, or the server did not start.
    """
    host, _, port_text = listen.rpartition(":")
    if not host or not port_text.isdigit():
        raise RuntimeError(f"--rest-listen must be HOST:PORT, got {listen!r}")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it each response's second write waits out the client's delayed ACK (40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port_text)))
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"cannot listen on {listen}: {exc}") from exc
    sock.setblocking(False)
    port: int = sock.getsockname()[1]
    try:
        schema = load_schema(config.descriptor_set or default_descriptor_set(), config.services)
        app = create_app(config, channel, schema)
    except (SchemaError, RouteError) as exc:
        sock.close()
        raise RuntimeError(f"cannot build the REST bridge: {exc}") from exc
    server = ManagedServer(uvicorn_config(app, host, port))
    task = asyncio.create_task(server.serve(sockets=[sock]), name="inprocess-rest")
    started = time.monotonic()
    while not server.started:
        if task.done() or time.monotonic() - started > STARTUP_TIMEOUT:
            server.should_exit = True
            with contextlib.suppress(Exception, SystemExit):
                await task
            sock.close()
            raise RuntimeError(f"the in-process REST server did not start on {listen}")
        await asyncio.sleep(0.01)
    return InProcessRest(server=server, task=task, host=host, port=port)
