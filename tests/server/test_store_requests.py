"""Idempotency keys in the store (AIP-155 request_id), on every backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.domain import Checkpoint, Resources, State
from server.errors import AlreadyExists, InvalidArgument, RequestInProgress
from server.store import Completion, RequestKey, Store, open_store

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
TTL = timedelta(hours=24)
LEASE = timedelta(seconds=60)


def make(name: str) -> Checkpoint:
    """A valid new checkpoint."""
    return Checkpoint(
        id=str(uuid.uuid4()),
        display_name=name,
        resources=Resources(limit_memory_mib=2048, request_memory_mib=1024, request_vcpus=2),
        state=State.CREATING,
        create_time=T0,
        update_time=T0,
        version=1,
    )


def key(scope: str = "alice", request_id: str = "k1", fingerprint: bytes = b"h1") -> RequestKey:
    """A request key with readable defaults."""
    return RequestKey(scope=scope, request_id=request_id, fingerprint=fingerprint)


async def claim(store: Store, k: RequestKey, at: datetime = T0) -> bytes | None:
    """Claim k at a given time with the service's retention and lease."""
    return await store.claim_request(k, at, ttl=TTL, lease=LEASE)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open, empty store of each backend, closed after the test."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/store.db"
    else:
        url = request.getfixturevalue("postgres_database_url")
    opened = open_store(url)
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_completed_key_replays_its_result(store: Store) -> None:
    """A claimed key whose create completed answers the stored result to the next claim."""
    assert await claim(store, key()) is None
    await store.create(make("once"), Completion(key(), b"answer"))
    assert await claim(store, key(), T0 + timedelta(hours=1)) == b"answer"


async def test_a_running_key_is_in_progress(store: Store) -> None:
    """A second claim before the first call finished is RequestInProgress (ABORTED)."""
    assert await claim(store, key()) is None
    with pytest.raises(RequestInProgress):
        await claim(store, key(), T0 + timedelta(seconds=5))


async def test_a_key_with_another_request_is_invalid(store: Store) -> None:
    """The same key with another fingerprint is refused, naming request_id."""
    assert await claim(store, key()) is None
    await store.create(make("first"), Completion(key(), b"answer"))
    with pytest.raises(InvalidArgument) as raised:
        await claim(store, key(fingerprint=b"other"))
    assert raised.value.message.startswith("request_id:")


async def test_keys_are_scoped_per_token_name(store: Store) -> None:
    """Two token names using one request_id get two independent keys."""
    assert await claim(store, key(scope="alice")) is None
    await store.create(make("alices"), Completion(key(scope="alice"), b"alice's"))
    assert await claim(store, key(scope="bob", fingerprint=b"bob's request")) is None


async def test_a_failed_create_keeps_no_result_and_release_frees_the_key(store: Store) -> None:
    """A create refused inside its transaction records nothing; releasing lets a retry run."""
    await store.create(make("taken"))
    assert await claim(store, key()) is None
    with pytest.raises(AlreadyExists):
        await store.create(make("taken"), Completion(key(), b"never"))
    with pytest.raises(RequestInProgress):
        await claim(store, key())
    await store.release_request(key())
    assert await claim(store, key()) is None


async def test_expired_keys_are_claimed_anew_and_purged(store: Store) -> None:
    """After 24 h a key is new again, and purge deletes the expired ones only."""
    assert await claim(store, key()) is None
    await store.create(make("old"), Completion(key(), b"old answer"))
    later = T0 + TTL + timedelta(seconds=1)
    assert await claim(store, key(fingerprint=b"new request"), later) is None
    assert await claim(store, key(request_id="k2"), T0) is None
    assert await store.purge_requests(later) == 1  # k2; k1 was claimed again at `later`
    assert await store.purge_requests(later) == 0


async def test_an_abandoned_claim_is_taken_over_after_the_lease(store: Store) -> None:
    """A claim with no outcome after the lease (its caller died) no longer blocks a retry."""
    assert await claim(store, key()) is None
    assert await claim(store, key(), T0 + LEASE + timedelta(seconds=1)) is None


async def test_concurrent_claims_of_one_key_let_exactly_one_run(store: Store) -> None:
    """Ten claims of one key at once: one may run, nine are told it is in progress."""
    results = await asyncio.gather(
        *(claim(store, key()) for _ in range(10)), return_exceptions=True
    )
    assert sum(r is None for r in results) == 1
    assert sum(isinstance(r, RequestInProgress) for r in results) == 9
