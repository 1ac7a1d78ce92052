"""server.idempotency: the request key, replay, release of a failed create, the purge schedule."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from checkpoint.v1 import checkpoint_pb2 as pb
from checkpoint.v1 import checkpoint_service_pb2 as svc

from server.errors import AlreadyExists, InvalidArgument, Unavailable
from server.idempotency import OnceOnly, request_key
from server.requests import new_checkpoint
from server.store import RequestKey, Store, open_store

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def create_request(name: str, request_id: str = "") -> svc.CreateCheckpointRequest:
    """A valid create request."""
    return svc.CreateCheckpointRequest(
        request_id=request_id,
        checkpoint=pb.Checkpoint(
            display_name=name,
            resources=pb.Resources(
                limits=pb.ResourceLimits(memory_mib=2048),
                requests=pb.ResourceRequests(memory_mib=1024, vcpus=2),
            ),
        ),
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """An empty SQLite store."""
    opened = open_store(f"sqlite:///{tmp_path}/store.db")
    try:
        yield opened
    finally:
        await opened.close()


def test_the_key_ignores_the_request_id_and_canonicalises_it() -> None:
    """The fingerprint covers the request but not its request_id, which is stored lowercase."""
    rid = str(uuid.uuid4())
    upper = request_key("alice", create_request("a", rid.upper()))
    assert upper.request_id == rid
    assert upper.fingerprint == request_key("alice", create_request("a", rid)).fingerprint
    assert upper.fingerprint != request_key("alice", create_request("b", rid)).fingerprint


def test_a_request_id_that_is_no_uuid_is_invalid() -> None:
    """AIP-155: request_id must be a UUID."""
    with pytest.raises(InvalidArgument, match="request_id"):
        request_key("alice", create_request("a", "order-42"))


async def test_a_retry_replays_and_a_failure_frees_the_key(store: Store) -> None:
    """The second call replays the first; a create refused as AlreadyExists leaves its key free."""
    once = OnceOnly(store)
    request = create_request("first", str(uuid.uuid4()))
    key = request_key("alice", request)
    first, replayed = await once.create(key, new_checkpoint(request, T0), T0)
    assert replayed is False
    again, replayed = await once.create(key, new_checkpoint(request, T0), T0)
    assert (again, replayed) == (first, True)
    taken = create_request("first", str(uuid.uuid4()))
    taken_key = request_key("alice", taken)
    with pytest.raises(AlreadyExists):
        await once.create(taken_key, new_checkpoint(taken, T0), T0)
    assert (
        await store.claim_request(taken_key, T0, ttl=timedelta(hours=1), lease=timedelta(minutes=1))
        is None
    )


async def test_purges_run_at_most_every_ten_minutes_and_never_fail_a_create(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Keyed creates purge on the first call and again only after PURGE_EVERY; a failing purge
    or release is logged, never the create's answer."""
    calls: list[datetime] = []

    async def failing_purge(now: datetime) -> int:
        calls.append(now)
        raise Unavailable("down")

    async def failing_release(key: RequestKey) -> None:
        raise Unavailable("down")

    monkeypatch.setattr(store, "purge_requests", failing_purge)
    once = OnceOnly(store)
    for minute in (0, 5, 11):
        request = create_request(f"c{minute}", str(uuid.uuid4()))
        at = T0 + timedelta(minutes=minute)
        await once.create(request_key("alice", request), new_checkpoint(request, at), at)
    assert calls == [T0, T0 + timedelta(minutes=11)]
    monkeypatch.setattr(store, "release_request", failing_release)
    taken = create_request("c0", str(uuid.uuid4()))
    with pytest.raises(AlreadyExists):
        await once.create(request_key("alice", taken), new_checkpoint(taken, T0), T0)
    assert "could not purge" in caplog.text
    assert "could not release" in caplog.text
