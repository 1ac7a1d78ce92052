"""Watching across two replicas on one PostgreSQL database, and surviving the loss of one.

A watcher on replica B sees writes made through replica A (LISTEN/NOTIFY); when B is killed
mid-stream (SIGKILL, no goodbye), the watcher reconnects to A with its last resume_token (gRPC)
or Last-Event-ID (SSE through `--rest-listen`) and sees every write exactly once, in order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc

from tests.e2e import READ_SCOPE, WRITE_SCOPE, GrpcServer, create_token, free_port, start_server
from tests.e2e.watching import Stream, new_checkpoint, sse_events

WRITES = 30
KILL_AFTER = 8


@dataclass
class Replica:
    server: GrpcServer
    rest: str
    channel: grpc.Channel
    stub: svc_grpc.CheckpointServiceStub


@dataclass
class Pair:
    a: Replica
    b: Replica
    metadata: tuple[tuple[str, str], ...]
    token: str


@pytest.fixture
def pair(tmp_path: Path, postgres_database_url: str) -> Iterator[Pair]:
    """Two replicas on one fresh PostgreSQL database, each also serving REST in-process."""
    tokens = tmp_path / "tokens.json"
    token = create_token(tokens, "replica-watcher", [READ_SCOPE, WRITE_SCOPE])
    replicas = []
    try:
        for name in ("replica-a", "replica-b"):
            rest = f"127.0.0.1:{free_port()}"
            extra = ["--rate-limit", "0", "--db-pool-size", "2", "--rest-listen", rest]
            server = start_server(name, tmp_path, postgres_database_url, tokens, extra=extra)
            channel = grpc.insecure_channel(server.address)
            replicas.append(
                Replica(server, f"http://{rest}", channel, svc_grpc.CheckpointServiceStub(channel))
            )
        yield Pair(replicas[0], replicas[1], (("authorization", f"Bearer {token}"),), token)
    finally:
        for replica in replicas:
            replica.channel.close()
            replica.server.process.stop()


def _write_through_a(pair: Pair, names: list[str]) -> threading.Thread:
    def run() -> None:
        for name in names:
            pair.a.stub.CreateCheckpoint(
                svc.CreateCheckpointRequest(checkpoint=new_checkpoint(name)),
                metadata=pair.metadata,
                timeout=10,
            )
            time.sleep(0.02)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_grpc_watcher_resumes_on_the_other_replica_missing_nothing(pair: Pair) -> None:
    """Writes through A reach a watcher on B; after B dies, resuming on A with the last token
    gives the rest: every write once, in commit order."""
    names = [f"grpc-{i:02d}" for i in range(WRITES)]
    stream = Stream(
        pair.b.stub.WatchCheckpoints(
            svc.WatchCheckpointsRequest(), metadata=pair.metadata, timeout=60
        )
    )
    assert stream.next().type == svc.WATCH_EVENT_TYPE_SYNCED
    writer = _write_through_a(pair, names)
    seen: list[str] = []
    token = ""
    while len(seen) < KILL_AFTER:
        event = stream.next()
        seen.append(event.checkpoint.display_name)
        token = event.resume_token
    pair.b.server.process.popen.kill()
    resumed = Stream(
        pair.a.stub.WatchCheckpoints(
            svc.WatchCheckpointsRequest(resume_token=token), metadata=pair.metadata, timeout=60
        )
    )
    while len(seen) < WRITES:
        event = resumed.next()
        assert event.type == svc.WATCH_EVENT_TYPE_CREATED
        seen.append(event.checkpoint.display_name)
    writer.join(timeout=10)
    assert seen == names
    assert resumed.idle(0.5)
    resumed.call.cancel()


def test_sse_watcher_reconnects_with_last_event_id_missing_nothing(pair: Pair) -> None:
    """The same over REST: SSE from B's REST port, then A's with Last-Event-ID."""
    names = [f"sse-{i:02d}" for i in range(WRITES)]
    auth = {"Authorization": f"Bearer {pair.token}", "Accept": "text/event-stream"}
    seen: list[str] = []
    last_id = ""
    with httpx.Client(timeout=10) as client:
        with client.stream("GET", f"{pair.b.rest}/v1/checkpoints:watch", headers=auth) as first:
            events = sse_events(first.iter_lines())
            assert next(events).event == "synced"
            writer = _write_through_a(pair, names)
            for event in events:
                seen.append(event.data["data"]["checkpoint"]["display_name"])
                last_id = event.id
                if len(seen) == KILL_AFTER:
                    break
            pair.b.server.process.popen.kill()
        headers = {**auth, "Last-Event-ID": last_id}
        with client.stream("GET", f"{pair.a.rest}/v1/checkpoints:watch", headers=headers) as again:
            for event in sse_events(again.iter_lines()):
                assert event.event == "created"
                seen.append(event.data["data"]["checkpoint"]["display_name"])
                if len(seen) == WRITES:
                    break
    writer.join(timeout=10)
    assert seen == names
