"""`--upstream-connections` across real processes: one bridge, a server with --workers 2.

Which server worker serves a call is read from outside: /proc maps each of the bridge's
connections (its local port) to the server worker holding the other end, and the server's
access line of each call names its peer, that same port.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e import Process, bearer, executable, free_port, start
from tests.e2e.test_workers import REST, SERVING, _serve, listening_pids, tokens, wait_for

__all__ = ["tokens"]  # the fixture, used by name

CONNECTIONS = 16
"""So many that all on one of two workers (2 ** -15) does not happen."""
PEER = re.compile(r"127\.0\.0\.1:(\d+)")


def _sockets(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _established() -> list[tuple[int, int, str]]:
    """(local port, remote port, inode) of every established IPv4/IPv6 TCP socket."""
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01":
                local = int(fields[1].rsplit(":", 1)[1], 16)
                remote = int(fields[2].rsplit(":", 1)[1], 16)
                rows.append((local, remote, fields[9]))
    return rows


def bridge_ports(bridge: int, port: int) -> set[int]:
    """The local ports of the bridge process's connections to the server's port."""
    mine = _sockets(bridge)
    return {local for local, remote, inode in _established() if remote == port and inode in mine}


def worker_of_port(workers: set[int], port: int) -> dict[int, int]:
    """For each client port connected to port, the server worker holding the connection."""
    rows = _established()
    found = {}
    for worker in workers:
        held = _sockets(worker)
        for local, remote, inode in rows:
            if local == port and inode in held:
                found[remote] = worker
    return found


@pytest.fixture
def spread(tmp_path: Path, tokens: tuple[Path, str]) -> Iterator[tuple[Process, str, Process, str]]:
    """A 2-worker server (access lines on) and one bridge with CONNECTIONS connections to it;
    yields (server, gRPC address, bridge, bridge URL)."""
    server = _serve(tmp_path, tokens[0], "--workers", "2", "--rest-listen", "127.0.0.1:0")
    try:
        wait_for(lambda: len(REST.findall(server.stdout.read_text())) == 2, "two workers")
        found = SERVING.search(server.stdout.read_text())
        assert found is not None
        address = found.group(1)
        listen = f"127.0.0.1:{free_port()}"
        args = [executable("checkpoint-rest-bridge"), "--listen", listen, "--upstream", address]
        args += ["--upstream-connections", str(CONNECTIONS)]
        bridge = start("bridge-spread", args, tmp_path)
        try:
            bridge.wait_for_http(f"http://{listen}/readyz")
            yield server, address, bridge, f"http://{listen}"
        finally:
            bridge.stop()
    finally:
        server.stop()


def _log(server: Process) -> str:
    return server.stderr.read_text(encoding="utf-8", errors="replace")


def _calls_by_worker(server: Process, ports: dict[int, int], since: int) -> Counter[int]:
    """Server workers of the access lines written after offset since, by their peer port."""
    served: Counter[int] = Counter()
    for line in _log(server)[since:].splitlines():
        if "grpc_call" in line and "ListCheckpoints" in line:
            peer = PEER.search(line)
            if peer is not None and int(peer.group(1)) in ports:
                served[ports[int(peer.group(1))]] += 1
    return served


def test_one_bridge_reaches_both_workers_and_survives_one_killed(
    spread: tuple[Process, str, Process, str], tokens: tuple[Path, str]
) -> None:
    """The bridge holds CONNECTIONS connections to the port, the kernel gives them to both
    workers, and calls go over all of them; a SIGKILLed worker is restarted by the supervisor,
    its connections are made again, and every call succeeds once it is back."""
    server, address, bridge, url = spread
    port = int(address.rsplit(":", 1)[1])
    wait_for(lambda: len(listening_pids(port)) == 2, "two gRPC listeners")
    workers = listening_pids(port)
    wait_for(lambda: len(bridge_ports(bridge.popen.pid, port)) == CONNECTIONS, "the connections")
    ports = worker_of_port(workers, port)
    assert set(ports) == bridge_ports(bridge.popen.pid, port)
    assert set(ports.values()) == workers

    since = len(_log(server))
    with httpx.Client(base_url=url, headers=bearer(tokens[1]), timeout=10) as client:
        for _ in range(2 * CONNECTIONS):
            assert client.get("/v1/checkpoints").status_code == 200
        wait_for(
            lambda: sum(_calls_by_worker(server, ports, since).values()) == 2 * CONNECTIONS,
            "the access lines",
        )
        served = _calls_by_worker(server, ports, since)
        assert set(served) == workers, served

        victim = min(workers)
        subprocess.run(["kill", "-KILL", str(victim)], check=True)
        wait_for(lambda: len(listening_pids(port) - {victim}) == 2, "a restarted worker")
        wait_for(lambda: client.get("/v1/checkpoints").status_code == 200, "a call through")
        codes = Counter(client.get("/v1/checkpoints").status_code for _ in range(2 * CONNECTIONS))
    assert codes == {200: 2 * CONNECTIONS}
    wait_for(lambda: len(bridge_ports(bridge.popen.pid, port)) == CONNECTIONS, "reconnected")
