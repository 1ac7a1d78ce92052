"""WatchCheckpoints over gRPC against a real `checkpoint-server` on its own SQLite database.

Snapshot then changes in commit order, each once; resume tokens (only what came after, forged,
too old); filters; writes by another process (`checkpoint-server import`) on the same file;
--max-watchers; and SIGTERM ending every stream with UNAVAILABLE within the grace.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from checkpoint.v1 import checkpoint_pb2 as pb
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.e2e import (
    READ_SCOPE,
    WRITE_SCOPE,
    GrpcServer,
    create_token,
    import_checkpoints,
    start_server,
)
from tests.e2e.watching import Stream, import_entry, new_checkpoint


class Env:
    def __init__(self, server: GrpcServer, database: str, token: str, tmp: Path) -> None:
        self.server, self.database, self.tmp = server, database, tmp
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.channel = grpc.insecure_channel(server.address)
        self.stub = svc_grpc.CheckpointServiceStub(self.channel)

    def watch(self, **fields: object) -> Stream:
        request = svc.WatchCheckpointsRequest(**fields)  # type: ignore[arg-type]
        return Stream(self.stub.WatchCheckpoints(request, metadata=self.metadata, timeout=60))

    def create(self, name: str) -> pb.Checkpoint:
        reply = self.stub.CreateCheckpoint(
            svc.CreateCheckpointRequest(checkpoint=new_checkpoint(name)), metadata=self.metadata
        )
        return reply.checkpoint

    def set_state(self, name: str, state: pb.CheckpointState.ValueType) -> None:
        self.stub.UpdateCheckpoint(
            svc.UpdateCheckpointRequest(
                checkpoint_id=name,
                checkpoint=pb.Checkpoint(state=state),
                update_mask=field_mask_pb2.FieldMask(paths=["state"]),
            ),
            metadata=self.metadata,
        )

    def delete(self, name: str) -> None:
        self.stub.DeleteCheckpoint(
            svc.DeleteCheckpointRequest(checkpoint_id=name), metadata=self.metadata
        )


def _start(tmp: Path, name: str, extra: list[str]) -> Env:
    tokens = tmp / "tokens.json"
    token = create_token(tokens, "watcher", [READ_SCOPE, WRITE_SCOPE])
    database = f"sqlite:///{tmp / 'watch.db'}"
    import_checkpoints(database, [import_entry("seeded")], tmp / "seed.json")
    server = start_server(name, tmp, database, tokens, extra=["--rate-limit", "0", *extra])
    return Env(server, database, token, tmp)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A server of its own, seeded with one checkpoint."""
    started = _start(tmp_path_factory.mktemp("watch"), "watch-server", [])
    yield started
    started.channel.close()
    started.server.process.stop()


def test_snapshot_then_changes_in_commit_order_each_once(env: Env) -> None:
    """A watch sees what exists, synced, then create, update and delete as they commit."""
    stream = env.watch()
    first = stream.take(2)
    assert first == [("existing", "seeded"), ("synced", "")]
    env.create("w-one")
    env.set_state("w-one", pb.CHECKPOINT_STATE_READY)
    env.delete("w-one")
    events = list(stream.iter(3))
    assert [(e.type, e.checkpoint.display_name) for e in events] == [
        (svc.WATCH_EVENT_TYPE_CREATED, "w-one"),
        (svc.WATCH_EVENT_TYPE_UPDATED, "w-one"),
        (svc.WATCH_EVENT_TYPE_DELETED, "w-one"),
    ]
    assert events[2].checkpoint.state == pb.CHECKPOINT_STATE_READY  # its last state
    assert len({e.resume_token for e in events}) == 3
    assert stream.idle(0.5)
    stream.call.cancel()


def test_resume_token_gives_only_what_came_after(env: Env) -> None:
    """Resuming from an event's token skips the snapshot and everything up to that event."""
    stream = env.watch(checkpoint_id="seeded")
    synced = list(stream.iter(2))[1]
    env.create("w-two")  # another checkpoint: filtered out
    env.set_state("seeded", pb.CHECKPOINT_STATE_READY)
    updated = stream.next()
    assert updated.checkpoint.state == pb.CHECKPOINT_STATE_READY
    stream.call.cancel()
    env.set_state("seeded", pb.CHECKPOINT_STATE_DELETING)
    resumed = env.watch(resume_token=synced.resume_token)
    assert resumed.take(3) == [
        ("created", "w-two"),
        ("updated", "seeded"),
        ("updated", "seeded"),
    ]
    resumed.call.cancel()
    again = env.watch(resume_token=updated.resume_token, state=pb.CHECKPOINT_STATE_DELETING)
    assert again.take(1) == [("updated", "seeded")]
    again.call.cancel()


def test_refused_watches_have_their_codes(env: Env) -> None:
    """A forged token is INVALID_ARGUMENT, an unknown checkpoint NOT_FOUND, a read scope needed."""
    forged = env.watch(resume_token="AQAAAAAAAAAB" + "A" * 22)
    assert forged.error().code() is grpc.StatusCode.INVALID_ARGUMENT
    missing = env.watch(checkpoint_id="no-such-checkpoint")
    assert missing.error().code() is grpc.StatusCode.NOT_FOUND
    anonymous = Stream(env.stub.WatchCheckpoints(svc.WatchCheckpointsRequest(), timeout=10))
    assert anonymous.error().code() is grpc.StatusCode.UNAUTHENTICATED


def test_an_import_by_another_process_reaches_the_watcher(env: Env) -> None:
    """`checkpoint-server import` on the same SQLite file is seen by a watcher of the server."""
    stream = env.watch(checkpoint_id="")
    while stream.next().type != svc.WATCH_EVENT_TYPE_SYNCED:
        pass
    import_checkpoints(env.database, [import_entry("w-imported")], env.tmp / "one.json")
    committed = time.monotonic()  # the import process has exited: its write is committed
    assert stream.take(1) == [("created", "w-imported")]
    assert time.monotonic() - committed < 5
    stream.call.cancel()


def test_a_token_older_than_the_history_is_out_of_range(env: Env) -> None:
    """After more changes than the history keeps, an old token is OUT_OF_RANGE, saying why."""
    stream = env.watch(checkpoint_id="seeded")
    synced = list(stream.iter(2))[1]
    stream.call.cancel()
    entries = [import_entry(f"bulk-{i}") for i in range(10_001)]
    import_checkpoints(env.database, entries, env.tmp / "bulk.json")
    error = env.watch(resume_token=synced.resume_token).error()
    assert error.code() is grpc.StatusCode.OUT_OF_RANGE
    assert "start again without a resume_token" in (error.details() or "")


def test_max_watchers_and_sigterm(tmp_path: Path) -> None:
    """Beyond --max-watchers is RESOURCE_EXHAUSTED with RetryInfo; SIGTERM ends streams promptly
    with UNAVAILABLE and the process exits within its grace."""
    env = _start(tmp_path, "watch-limited", ["--max-watchers", "1", "--grace", "5"])
    try:
        open_one = env.watch()
        assert open_one.take(2)[1] == ("synced", "")
        refused = env.watch().error()
        assert refused.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        status = rpc_status.from_call(refused)  # type: ignore[arg-type]
        assert status is not None
        assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details)
        started = time.monotonic()
        env.server.process.popen.terminate()
        ended = open_one.error(timeout=5)
        assert ended.code() is grpc.StatusCode.UNAVAILABLE
        assert "resume" in (ended.details() or "")
        assert env.server.process.popen.wait(timeout=5) == 0
        assert time.monotonic() - started < 3
    finally:
        env.channel.close()
        env.server.process.stop()
