"""Issue 12's rows: every mode with 1 and with 2 worker processes, beside grpc-gateway (Go) in
front of the same server, at concurrency 64, so each of its target ratios comes from one run.

For each worker count N, one process group after another:

    noop-wN            N no-op grpcio servicers on one port (SO_REUSEPORT)    h2load
    grpc-wN            checkpoint-server serve --workers N                   h2load
    rest-inprocess-wN  the same server's --rest-listen door                  wrk
    gateway-wN         grpc-gateway -> the same server                       wrk
    rest-bridge-wN     checkpoint-rest-bridge --workers N -> the same server wrk

Each door is first asked for the checkpoint once and must answer 200 with it (the gateway
without the bridge's "data" envelope, as grpc-gateway answers a response_body rule).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import grpc_gateway, procs
from bench.rows import Bench, Target
from bench.seed import SeededStore
from bench.serving import (
    GRPC_PATH,
    check_checkpoint,
    check_grpc,
    grpc_frame,
    serve,
    start_bridge,
)
from rest_bridge.config import DEFAULT_UPSTREAM_CONNECTIONS

WORKERS = (1, 2)
CONCURRENCY = (64,)
"""The targets' concurrency; these rows run at it alone, to keep `make bench` short."""
CONNECTIONS_PER_WORKER = 2
"""The gateway's connections to the server, per server worker. The kernel hands each to one of
the server's SO_REUSEPORT workers by a hash, so the gateway is restarted until every worker holds
the same number: the reference is grpc-gateway using every worker alike. Two, not one (its
default): on one connection at c=64 the server now and then refused streams (REFUSED_STREAM, a
503 from the gateway) on this loaded machine; two cost the same CPU per request as one, sixteen
cost 15 % more (fewer streams per connection)."""
BRIDGE_CONNECTIONS = int(
    os.environ.get("CHECKPOINT_REST_UPSTREAM_CONNECTIONS", DEFAULT_UPSTREAM_CONNECTIONS)
)
"""The bridge's --upstream-connections: its default, or the environment's (to compare others),
given explicitly so the row names it."""
BALANCE_TRIES = 40
"""Starts until an even spread. Each bridge worker's connections must spread evenly on their
own (one row each): with 2 workers of 4 connections that is 14 % of the starts."""


def measure(bench: Bench, small: SeededStore, tokens: Path, gateway: Path) -> None:
    """Every row of the module docstring, for 1 worker, then for 2."""
    for workers in WORKERS:
        _noop(bench, small, workers)
        _service(bench, small, tokens, gateway, workers)


def _noop(bench: Bench, small: SeededStore, workers: int) -> None:
    """N no-op servicers sharing a port, as `serve --workers N` shares one."""
    s, python = bench.settings, sys.executable
    command = [python, "-m", "bench.baselines", "grpc", "--reuse-port", "--listen"]
    first = procs.start(f"noop-w{workers}", [*command, "127.0.0.1:0"], s.work_dir)
    started = [first]
    try:
        address = first.wait_for(r"serving gRPC on (\S+:\d+)").group(1)
        for index in range(1, workers):
            other = procs.start(f"noop-w{workers}-{index}", [*command, address], s.work_dir)
            started.append(other)
            other.wait_for(r"serving gRPC on")
        target = Target(
            f"http://{address}{GRPC_PATH}",
            started,
            grpc_frame(s.work_dir, "small-id", small.sample_id),
            check_grpc(address, bench.token, small.sample_id),
        )
        label = f"{_workers(workers)}: no-op grpcio servicer (SO_REUSEPORT)"
        bench.measure(f"noop-w{workers}", label, "grpc", target, CONCURRENCY)
    finally:
        for proc in started:
            proc.stop()


def _service(
    bench: Bench, small: SeededStore, tokens: Path, gateway_binary: Path, workers: int
) -> None:
    """One server with N workers; its gRPC and in-process doors, then the gateway and an
    N-worker bridge in front of it."""
    s, token, n = bench.settings, bench.token, workers
    server, address, inprocess = serve(
        f"server-w{n}", small.url, tokens, s.work_dir, rest=True, workers=n
    )
    started = [server]
    try:
        port = int(address.rsplit(":", 1)[1])

        def gateway_start() -> tuple[procs.Proc, str]:
            connections = CONNECTIONS_PER_WORKER * n
            return grpc_gateway.start(
                f"gateway-w{n}", gateway_binary, address, s.work_dir, connections
            )

        def bridge_start() -> tuple[procs.Proc, str]:
            extra = ("--upstream-connections", str(BRIDGE_CONNECTIONS))
            bridge, at = start_bridge(f"bridge-w{n}", address, s.work_dir, extra=extra, workers=n)
            return bridge, f"127.0.0.1:{at}"

        gateway, gateway_address, gateway_spread = _balanced(
            bench,
            "grpc-gateway",
            gateway_start,
            server=server,
            port=port,
            connections=[CONNECTIONS_PER_WORKER * n],
        )
        started.append(gateway)
        bridge, bridge_address, bridge_spread = _balanced(
            bench,
            "bridge",
            bridge_start,
            server=server,
            port=port,
            connections=[BRIDGE_CONNECTIONS] * n,
        )
        started.append(bridge)
        path = f"/v1/checkpoints/{small.sample_id}"
        doors = (  # key, what, URL, serving processes, envelope of the answer
            (
                f"rest-inprocess-w{n}",
                "in-process REST",
                f"http://{inprocess}{path}",
                [server],
                "data",
            ),
            (
                f"gateway-w{n}",
                f"grpc-gateway (Go) -> server, connections {gateway_spread}",
                f"http://{gateway_address}{path}",
                [server, gateway],
                "",
            ),
            (
                f"rest-bridge-w{n}",
                f"bridge -> server, connections {bridge_spread}",
                f"http://{bridge_address}{path}",
                [server, bridge],
                "data",
            ),
        )
        for _, _, url, _, envelope in doors:
            check_checkpoint(url, token, small.sample_id, envelope)
        grpc_target = Target(
            f"http://{address}{GRPC_PATH}",
            [server],
            grpc_frame(s.work_dir, "small-id", small.sample_id),
            check_grpc(address, token, small.sample_id),
        )
        label = f"{_workers(n)}: gRPC GetCheckpoint by id"
        bench.measure(f"grpc-w{n}", label, "grpc", grpc_target, CONCURRENCY)
        for key, what, url, serving, _ in doors:
            label = f"{_workers(n)}: REST by id, {what}"
            bench.measure(key, label, "rest", Target(url, serving), CONCURRENCY)
        if s.profile:  # the bridge's workers, to compare 1 and 2 of them
            key, _, url, serving, _ = doors[-1]
            bench.profile(key, Target(url, serving), [bridge])
    finally:
        for proc in reversed(started):
            proc.stop()


def _balanced(
    bench: Bench,
    what: str,
    start: Callable[[], tuple[procs.Proc, str]],
    *,
    server: procs.Proc,
    port: int,
    connections: list[int],
) -> tuple[procs.Proc, str, list[list[int]]]:
    """A client of the server (the gateway, the bridge) started until each of its processes'
    connections (connections[i] for its i-th) spread evenly over the server's workers, as the
    kernel hands each connection to one worker by a hash: the process, its HOST:PORT, and the
    spread (a row per client process, a column per server worker).

    Raises:
        RuntimeError: no even spread in BALANCE_TRIES starts, or it never connected.
    """
    spread: list[list[int]] = []
    for attempt in range(1, BALANCE_TRIES + 1):
        client, client_address = start()
        deadline = time.monotonic() + procs.START_TIMEOUT
        while time.monotonic() < deadline:
            spread = procs.connection_matrix(client, server, port)
            if [sum(row) for row in spread] == connections:
                break
            time.sleep(0.1)
        if [sum(row) for row in spread] != connections:
            client.stop()
            raise RuntimeError(
                f"{what} opened {spread} connections to port {port}, not {connections}\n"
                f"{client.tail()}"
            )
        if all(len(set(row)) == 1 for row in spread):
            bench.notes.append(
                f"{what}: connections per process and server worker {spread} (start {attempt})"
            )
            return client, client_address, spread
        client.stop()
    raise RuntimeError(
        f"{what}'s connections never spread evenly over the server's workers in "
        f"{BALANCE_TRIES} starts (last: {spread})"
    )


def _workers(count: int) -> str:
    return f"{count} worker{'s' if count > 1 else ''}"
