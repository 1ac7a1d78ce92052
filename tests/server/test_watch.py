"""server.watch.WatchHub on a real SQLite store, in-process: resuming a deleted checkpoint, closing.

The gRPC and REST behaviour is covered end to end (tests/e2e/test_watch_*.py); these pin what
is awkward to reach from outside: a resumed watch of a UUID whose checkpoint is gone, the open
watch count, and a hub closed before a watch starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from checkpoint.v1 import checkpoint_service_pb2 as svc

from server.domain import ById
from server.errors import NotFound, Unavailable
from server.resume_tokens import ResumeTokens
from server.store import Store, open_store
from server.watch import WatchHub
from tests.server.test_store import make

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh SQLite store."""
    opened = open_store(f"sqlite:///{tmp_path / 'watch.db'}")
    yield opened
    await opened.close()


async def test_resuming_a_deleted_checkpoint_by_uuid_delivers_its_deletion(store: Store) -> None:
    """By UUID and with a resume token, a checkpoint deleted since is watched: its delete comes."""
    hub = WatchHub(store, ResumeTokens(b"k" * 32), max_watchers=2)
    created = await store.create(make("doomed"))
    first = hub.watch(svc.WatchCheckpointsRequest(checkpoint_id=created.id))
    events = [await anext(first), await anext(first)]
    assert [e.type for e in events] == [svc.WATCH_EVENT_TYPE_EXISTING, svc.WATCH_EVENT_TYPE_SYNCED]
    assert hub.active == 1
    await first.aclose()
    assert hub.active == 0
    await store.delete(ById(created.id), "")
    with pytest.raises(NotFound):  # without a token, a missing checkpoint is NOT_FOUND
        await anext(hub.watch(svc.WatchCheckpointsRequest(checkpoint_id=created.id)))
    resumed = hub.watch(
        svc.WatchCheckpointsRequest(checkpoint_id=created.id, resume_token=events[1].resume_token)
    )
    deleted = await asyncio.wait_for(anext(resumed), 2)
    assert (deleted.type, deleted.checkpoint.display_name) == (
        svc.WATCH_EVENT_TYPE_DELETED,
        "doomed",
    )
    await resumed.aclose()
    await hub.close()
    with pytest.raises(Unavailable, match="shutting down"):
        await anext(hub.watch(svc.WatchCheckpointsRequest()))
