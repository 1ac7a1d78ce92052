"""Hardening over real sockets: acknowledged writes survive SIGKILL.

Round after round, `checkpoint-server serve` takes CreateCheckpoint calls over gRPC from three
threads (each acknowledged id is recorded) and is killed with SIGKILL mid-load; the SQLite file
is then checked (every acknowledged id present, `PRAGMA integrity_check` ok) before the next
round restarts the server on the same database. A last start serves every acknowledged id.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest
from checkpoint.v1 import checkpoint_pb2 as pb
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc

from tests.e2e import Tokens, start_server

MAX_ROUNDS = 10
MIN_ROUNDS = 5
BUDGET_SECONDS = 20.0
WRITERS = 3


class _Writers:
    """Threads creating checkpoints until stopped; acknowledged ids and failures recorded."""

    def __init__(self, address: str, token: str, round_no: int) -> None:
        self.acked: dict[str, str] = {}
        """display_name -> id of every create the server acknowledged."""
        self.failures: Counter[str] = Counter()
        self._address, self._round = address, round_no
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(WRITERS)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _run(self, writer: int) -> None:
        with grpc.insecure_channel(self._address) as channel:
            stub = svc_grpc.CheckpointServiceStub(channel)
            count = 0
            while not self._stop.is_set():
                count += 1
                name = f"r{self._round}-w{writer}-{count}"
                request = svc.CreateCheckpointRequest(
                    checkpoint=pb.Checkpoint(
                        display_name=name,
                        resources=pb.Resources(
                            limits=pb.ResourceLimits(memory_mib=64),
                            requests=pb.ResourceRequests(memory_mib=32, vcpus=1),
                        ),
                    )
                )
                try:
                    reply = stub.CreateCheckpoint(request, metadata=self._metadata, timeout=5)
                except grpc.RpcError as exc:
                    code: grpc.StatusCode = exc.code()
                    with self._lock:
                        self.failures[code.name] += 1
                    time.sleep(0.02)
                    continue
                with self._lock:
                    self.acked[name] = reply.checkpoint.id

    def acknowledged(self) -> int:
        with self._lock:
            return len(self.acked)


def _stored(db_file: Path) -> tuple[dict[str, str], str]:
    """display_name -> id of every stored checkpoint, and PRAGMA integrity_check's answer."""
    conn = sqlite3.connect(db_file, timeout=10)
    try:
        rows = dict(conn.execute("SELECT display_name, id FROM checkpoints").fetchall())
        (integrity,) = conn.execute("PRAGMA integrity_check").fetchone()
    finally:
        conn.close()
    return rows, str(integrity)


def test_acknowledged_writes_survive_sigkill_round_after_round(
    tmp_path_factory: pytest.TempPathFactory, e2e_tokens: Tokens
) -> None:
    """Across up to 10 SIGKILLs mid-write-load, no acknowledged create is lost and the
    database passes PRAGMA integrity_check after each one."""
    work: Path = tmp_path_factory.mktemp("hardening-durability")
    db_file = work / "durable.db"
    database = f"sqlite:///{db_file}"
    acked: dict[str, str] = {}
    lost: list[str] = []
    integrity: list[str] = []
    failures: Counter[str] = Counter()
    unacked_but_stored = 0
    rounds = 0
    rng = random.Random(20261129)
    began = time.monotonic()
    while rounds < MAX_ROUNDS and time.monotonic() - began < BUDGET_SECONDS:
        rounds += 1
        server = start_server(
            f"durable-{rounds}", work, database, e2e_tokens.path, ["--rate-limit", "0"]
        )
        writers = _Writers(server.address, e2e_tokens.write, rounds)
        try:
            writers.start()
            deadline = time.monotonic() + 10
            while writers.acknowledged() < 5 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.1, 0.5))
            server.process.popen.kill()
            server.process.popen.wait(timeout=10)
        finally:
            writers.stop()
            server.process.stop()
        stored, check = _stored(db_file)
        integrity.append(check)
        acked.update(writers.acked)
        failures.update(writers.failures)
        lost += [name for name, id_ in writers.acked.items() if stored.get(name) != id_]
        unacked_but_stored += sum(
            1 for name in stored if name.startswith(f"r{rounds}-") and name not in writers.acked
        )
    # A last start: the server itself serves every acknowledged checkpoint.
    server = start_server("durable-final", work, database, e2e_tokens.path, ["--rate-limit", "0"])
    served: set[str] = set()
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = svc_grpc.CheckpointServiceStub(channel)
            metadata = (("authorization", f"Bearer {e2e_tokens.read}"),)
            token = ""
            while True:
                page = stub.ListCheckpoints(
                    svc.ListCheckpointsRequest(page_size=1000, page_token=token),
                    metadata=metadata,
                    timeout=10,
                )
                served.update(c.id for c in page.checkpoints)
                token = page.next_page_token
                if not token:
                    break
    finally:
        exit_code = server.process.stop()
    print(
        f"durability: {rounds} SIGKILL rounds in {time.monotonic() - began:.1f} s, "
        f"{len(acked)} acknowledged writes, {len(lost)} lost, "
        f"{unacked_but_stored} unacknowledged but stored, failures {dict(failures)}"
    )
    assert rounds >= MIN_ROUNDS, rounds
    assert len(acked) >= 5 * rounds
    assert lost == []
    assert integrity == ["ok"] * rounds
    assert set(acked.values()) <= served
    assert exit_code == 0
