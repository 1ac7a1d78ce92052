"""`--workers N` on both commands, across real processes: one port, restarts, drain, one budget.

Which process serves a port is read from /proc (the listening sockets' inodes and the file
descriptors that hold them), so the tests see the workers the kernel balances over.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import pytest
from checkpoint.v1 import checkpoint_pb2 as pb
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rest_bridge.workers import WorkerGroup
from tests.e2e import (
    READ_SCOPE,
    WRITE_SCOPE,
    Process,
    create_token,
    executable,
    free_port,
    start,
)

SERVING = re.compile(r"serving gRPC on (\S+:\d+)")
REST = re.compile(r"serving REST on (\S+:\d+)")
WAIT = 20.0


def listening_pids(port: int) -> set[int]:
    """Pids of the processes holding a listening TCP socket on port (IPv4 or IPv6)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{inode}]")
    pids: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if fd.readlink().name in inodes or str(fd.readlink()) in inodes:
                    pids.add(int(entry.name))
                    break
        except OSError:
            continue
    return pids


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def health(address: str) -> int:
    """The overall health status a fresh connection gets (a new connection may reach any
    worker)."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)  # type: ignore[no-untyped-call]
        reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        status: int = reply.status
        return status


@pytest.fixture
def tokens(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "tokens.json"
    return path, create_token(path, "workers", [READ_SCOPE, WRITE_SCOPE])


def _serve(tmp_path: Path, tokens: Path, *extra: str) -> Process:
    args = [executable("checkpoint-server"), "serve", "--listen", "127.0.0.1:0", "--grace", "2"]
    args += ["--database", f"sqlite:///{tmp_path / 'db.sqlite'}", "--tokens", str(tokens)]
    return start("workers", [*args, *extra], tmp_path)


@pytest.fixture
def two_workers(tmp_path: Path, tokens: tuple[Path, str]) -> Iterator[tuple[Process, str, str]]:
    """`serve --workers 2` with in-process REST; yields (process, gRPC address, REST address)."""
    process = _serve(tmp_path, tokens[0], "--workers", "2", "--rest-listen", "127.0.0.1:0")
    try:
        # Each worker prints its gRPC line, then its REST line once that port serves too.
        wait_for(lambda: len(REST.findall(process.stdout.read_text())) == 2, "two workers")
        address = SERVING.search(process.stdout.read_text())
        rest = REST.search(process.stdout.read_text())
        assert address is not None
        assert rest is not None
        yield process, address.group(1), rest.group(1)
    finally:
        process.stop()


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def test_two_workers_serve_one_port_and_a_dead_one_is_restarted(
    two_workers: tuple[Process, str, str], tokens: tuple[Path, str]
) -> None:
    """Both ports are held by two workers; a SIGKILLed worker is replaced by a new process."""
    process, address, rest = two_workers
    wait_for(lambda: len(listening_pids(_port(address))) == 2, "two gRPC listeners")
    wait_for(lambda: len(listening_pids(_port(rest))) == 2, "two REST listeners")
    workers = listening_pids(_port(address))
    assert process.popen.pid not in workers
    assert listening_pids(_port(rest)) == workers
    wait_for(lambda: health(address) == health_pb2.HealthCheckResponse.SERVING, "SERVING")
    victim = min(workers)
    subprocess.run(["kill", "-KILL", str(victim)], check=True)
    wait_for(lambda: len(listening_pids(_port(address)) - {victim}) == 2, "a restarted worker")
    assert "restarting in" in process.stderr.read_text()
    with grpc.insecure_channel(address) as channel:
        stub = svc_grpc.CheckpointServiceStub(channel)
        reply = stub.ListCheckpoints(
            svc.ListCheckpointsRequest(),
            metadata=(("authorization", f"Bearer {tokens[1]}"),),
            timeout=5,
        )
    assert list(reply.checkpoints) == []


def test_sigterm_drains_every_worker_and_exits_zero(
    two_workers: tuple[Process, str, str],
) -> None:
    """SIGTERM to the supervisor stops both workers and the supervisor exits 0."""
    process, address, _ = two_workers
    wait_for(lambda: len(listening_pids(_port(address))) == 2, "two gRPC listeners")
    process.popen.send_signal(signal.SIGTERM)
    assert process.popen.wait(timeout=15) == 0
    assert listening_pids(_port(address)) == set()


def test_one_budget_per_token_across_workers(tmp_path: Path, tokens: tuple[Path, str]) -> None:
    """At 20 calls/s (burst 1) over 2 workers, the calls allowed stay within 10 % of the rate."""
    process = _serve(
        tmp_path, tokens[0], "--workers", "2", "--rate-limit", "20", "--rate-burst", "1"
    )
    try:
        wait_for(lambda: len(SERVING.findall(process.stdout.read_text())) == 2, "two workers")
        found = SERVING.search(process.stdout.read_text())
        assert found is not None
        address = found.group(1)
        wait_for(lambda: len(listening_pids(_port(address))) == 2, "two listeners")
        metadata = (("authorization", f"Bearer {tokens[1]}"),)
        channels = [grpc.insecure_channel(address) for _ in range(8)]
        stubs = [svc_grpc.CheckpointServiceStub(c) for c in channels]

        def call(index: int) -> bool:
            try:
                stubs[index % len(stubs)].ListCheckpoints(
                    svc.ListCheckpointsRequest(), metadata=metadata, timeout=5
                )
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise
                return False
            return True

        for index in range(len(stubs)):  # connect every channel (both workers) first
            call(index)
        time.sleep(1.5)  # let the bucket refill to its burst
        started = time.monotonic()
        allowed = 0
        with ThreadPoolExecutor(max_workers=4) as pool:
            index = 0
            while time.monotonic() - started < 3.0:
                results = list(pool.map(call, range(index, index + 8)))
                allowed += sum(results)
                index += 8
        elapsed = time.monotonic() - started
        for channel in channels:
            channel.close()
        expected = 1 + 20 * elapsed
        assert abs(allowed - expected) <= 0.1 * expected, (allowed, expected)
    finally:
        process.stop()


def test_concurrent_writes_through_both_workers_are_serialised(
    two_workers: tuple[Process, str, str], tokens: tuple[Path, str]
) -> None:
    """Creates through both workers all land in the one SQLite file; one name, one winner."""
    _, address, rest = two_workers
    headers = {"Authorization": f"Bearer {tokens[1]}"}
    resources = {"limits": {"memory_mib": 2}, "requests": {"memory_mib": 1, "vcpus": 1}}

    def create(name: str) -> int:
        with httpx.Client(base_url=f"http://{rest}", timeout=10) as client:  # a new connection
            body = {"display_name": name, "resources": resources}
            return client.post("/v1/checkpoints", json=body, headers=headers).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        unique = list(pool.map(create, [f"w-{i}" for i in range(40)]))
        same = list(pool.map(create, ["contested"] * 10))
    assert unique == [200] * 40
    assert sorted(same) == [200] + [409] * 9
    with grpc.insecure_channel(address) as channel:
        stub = svc_grpc.CheckpointServiceStub(channel)
        listed = stub.ListCheckpoints(
            svc.ListCheckpointsRequest(page_size=1000),
            metadata=(("authorization", f"Bearer {tokens[1]}"),),
            timeout=5,
        )
    names = {c.display_name for c in listed.checkpoints}
    assert names == {f"w-{i}" for i in range(40)} | {"contested"}
    assert all(c.state == pb.CHECKPOINT_STATE_CREATING for c in listed.checkpoints)


def test_a_worker_that_cannot_start_stops_the_supervisor(
    tmp_path: Path, tokens: tuple[Path, str]
) -> None:
    """A start-up failure (a tokens file that does not exist) is not restarted forever."""
    process = _serve(tmp_path, tmp_path / "missing.json", "--workers", "2")
    assert process.popen.wait(timeout=WAIT) != 0
    assert "missing.json" in process.stderr.read_text()


def test_bridge_workers_share_its_port(tmp_path: Path, tokens: tuple[Path, str]) -> None:
    """`checkpoint-rest-bridge --workers 2`: two processes on one port, /readyz 200, restart."""
    server = _serve(tmp_path, tokens[0])
    try:
        found = server.wait_for_output(SERVING)
        upstream = found.split()[-1]
        listen = f"127.0.0.1:{free_port()}"
        args = [executable("checkpoint-rest-bridge"), "--listen", listen, "--upstream", upstream]
        bridge = start("bridge-workers", [*args, "--workers", "2"], tmp_path)
        try:
            bridge.wait_for_http(f"http://{listen}/readyz")
            wait_for(lambda: len(listening_pids(_port(listen))) == 2, "two bridge listeners")
            victim = min(listening_pids(_port(listen)))
            subprocess.run(["kill", "-KILL", str(victim)], check=True)
            wait_for(
                lambda: len(listening_pids(_port(listen)) - {victim}) == 2, "a restarted bridge"
            )
            bridge.wait_for_http(f"http://{listen}/readyz")
            bridge.popen.send_signal(signal.SIGTERM)
            assert bridge.popen.wait(timeout=20) == 0
        finally:
            bridge.stop()
    finally:
        server.stop()


def test_group_is_ready_only_when_every_worker_serves(tmp_path: Path) -> None:
    """WorkerGroup.all_serving is false until every slot is marked, and again after one clears."""
    group = WorkerGroup.create(tmp_path, 3)
    assert not group.all_serving()
    for index in range(3):
        group.mark(True, index)
    assert group.all_serving()
    group.mark(False, 1)
    assert not group.all_serving()
