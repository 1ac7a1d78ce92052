"""Hardening over real sockets: a flood of calls with tiny deadlines leaks nothing.

Three hundred calls through the session's bridge with Grpc-Timeout between 1 us and 5 ms (some
expire before or on the wire, others finish in the server just in time); afterwards neither the
bridge nor the gRPC server holds more file descriptors or threads than before, give or take a
small slack.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.e2e import Bridge, GrpcServer, Tokens, bearer, http_client

CALLS = 300
THREADS = 3
TIMEOUTS = ["1u", "50u", "1m", "2m", "5m"]
FD_SLACK = 6
THREAD_SLACK = 3
SETTLE_SECONDS = 5.0


def _resources(pid: int) -> tuple[int, int]:
    """Open file descriptors and threads of a process, from /proc."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    threads = next(
        int(line.split()[1]) for line in status.splitlines() if line.startswith("Threads:")
    )
    return fds, threads


def _flood(clients: list[httpx.Client], token: str, calls: int) -> Counter[int]:
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def run(client: httpx.Client, offset: int) -> None:
        for index in range(offset, calls, len(clients)):
            headers = {**bearer(token), "Grpc-Timeout": TIMEOUTS[index % len(TIMEOUTS)]}
            status = client.get("/v1/checkpoints/example", headers=headers).status_code
            with lock:
                statuses[status] += 1

    threads = [threading.Thread(target=run, args=(c, i)) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


def test_tiny_deadline_flood_leaks_no_descriptors_or_threads(
    bridge: Bridge, grpc_server: GrpcServer, e2e_tokens: Tokens
) -> None:
    """After 300 calls with deadlines of 1 us to 5 ms, the bridge's and the server's file
    descriptors and threads are back to their level before the flood (small slack)."""
    pids = {"bridge": bridge.process.popen.pid, "server": grpc_server.process.popen.pid}
    clients = [http_client(bridge.base_url) for _ in range(THREADS)]
    try:
        # Warm up: connections open, lazily started threads running, before the baseline.
        _flood(clients, e2e_tokens.read, 30)
        time.sleep(0.5)
        before = {name: _resources(pid) for name, pid in pids.items()}
        statuses = _flood(clients, e2e_tokens.read, CALLS)
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            time.sleep(0.25)
            after = {name: _resources(pid) for name, pid in pids.items()}
            settled = all(
                after[n][0] <= before[n][0] + FD_SLACK
                and after[n][1] <= before[n][1] + THREAD_SLACK
                for n in pids
            )
            if settled or time.monotonic() > deadline:
                break
    finally:
        for client in clients:
            client.close()
    print(
        f"deadline flood: statuses {dict(statuses)}; (fds, threads) before {before} after {after}"
    )
    assert sum(statuses.values()) == CALLS, statuses
    assert set(statuses) <= {200, 504}, statuses
    # Many of the microsecond deadlines expire (504); most millisecond ones finish (200).
    assert statuses[504] >= CALLS // 10, statuses
    assert statuses[200] > 0, statuses
    for name in pids:
        assert after[name][0] <= before[name][0] + FD_SLACK, (name, before, after)
        assert after[name][1] <= before[name][1] + THREAD_SLACK, (name, before, after)
    assert bridge.process.popen.poll() is None
    assert grpc_server.process.popen.poll() is None
