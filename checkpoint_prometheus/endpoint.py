"""The /metrics endpoint: prometheus-client's own small HTTP server, on its own port.

Never on an API port, so scrapes need no token, cannot be reached through the API's routes, and
a slow scrape never competes with the API's event loop (it answers from a thread).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from threading import Thread
from wsgiref.simple_server import WSGIServer, make_server

import prometheus_client
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    make_wsgi_app,
)
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler


def new_registry() -> CollectorRegistry:
    """A registry with the process, platform and GC collectors (what the default one has).

    One registry per process (not the library's global), so a test can build several servers
    in one interpreter. No `_created` series: Go's clients expose none, and they double the
    number of series of every counter and histogram.
    """
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry(auto_describe=True)
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


@dataclass
class MetricsEndpoint:
    """A running /metrics server; close() stops it."""

    server: WSGIServer
    thread: Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class _Server(ThreadingWSGIServer):
    """prometheus-client's threading WSGI server, binding with SO_REUSEPORT when asked: the
    workers of `--workers N` share the metrics port as they share the API's (each answers
    with its own process's figures)."""

    reuse_port = False

    def server_bind(self) -> None:
        if self.reuse_port:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def serve_metrics(
    listen: str, registry: CollectorRegistry, flag: str, reuse_port: bool = False
) -> MetricsEndpoint:
    """Serve registry as Prometheus text on listen (HOST:PORT; port 0 picks a free one).

    Raises:
        RuntimeError: listen is not HOST:PORT or cannot be bound; the message names flag.
    """
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise RuntimeError(f"{flag} must be HOST:PORT, got {listen!r}")
    server_class = type(
        "MetricsServer",
        (_Server,),
        {
            "reuse_port": reuse_port,
            "address_family": socket.AF_INET6 if ":" in host else socket.AF_INET,
        },
    )
    try:
        server: WSGIServer = make_server(
            host, int(port), make_wsgi_app(registry), server_class, handler_class=_SilentHandler
        )
    except OSError as exc:
        raise RuntimeError(f"cannot listen on {listen} ({flag}): {exc}") from exc
    thread = Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return MetricsEndpoint(server, thread, host, server.server_port)
