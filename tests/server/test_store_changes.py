"""The change history on every backend: commit order, snapshots, retention, cross-store wake-ups.

Two stores opened on one URL stand for two processes (replicas on PostgreSQL, the server and
`checkpoint-server import` on SQLite): a write through one must wake and reach the other.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from server.domain import ById, State
from server.errors import OutOfRange
from server.store import CHANGE_RETENTION, ChangeKind, Store, _changes, open_store
from tests.server.test_store import make, store, store_url  # noqa: F401 (fixtures)

pytestmark = pytest.mark.anyio


async def test_every_write_is_recorded_in_commit_order(store: Store) -> None:  # noqa: F811
    """Create, update, delete and import leave one change each, with growing seqs."""
    start, _ = await store.snapshot(None, None)
    a = await store.create(make("a"))
    await store.update(ById(a.id), lambda c: replace(c, state=State.READY, version=c.version + 1))
    await store.delete(ById(a.id), "")
    await store.import_many([make("b")])
    changes = await store.changes_after(start, 100)
    assert [(c.kind, c.checkpoint.display_name) for c in changes] == [
        (ChangeKind.CREATED, "a"),
        (ChangeKind.UPDATED, "a"),
        (ChangeKind.DELETED, "a"),
        (ChangeKind.CREATED, "b"),
    ]
    assert changes[2].checkpoint.state is State.READY
    assert [c.seq for c in changes] == sorted({c.seq for c in changes})
    assert await store.changes_after(changes[-1].seq, 100) == []


async def test_snapshot_is_consistent_with_its_seq(store: Store) -> None:  # noqa: F811
    """The snapshot's seq is that of the last change it includes, and filters apply."""
    a = await store.create(make("a"))
    await store.create(make("b", state=State.READY))
    seq, rows = await store.snapshot(None, None)
    assert [c.display_name for c in rows] == ["a", "b"]
    assert (await store.changes_after(seq - 1, 10))[0].checkpoint.display_name == "b"
    _, ready = await store.snapshot(State.READY, None)
    assert [c.display_name for c in ready] == ["b"]
    _, one = await store.snapshot(None, a.id)
    assert [c.display_name for c in one] == ["a"]


async def test_history_keeps_the_newest_changes_only(
    store: Store,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the retention, an old position is OUT_OF_RANGE and the table holds the window."""
    monkeypatch.setattr(_changes, "CHANGE_RETENTION", 5)  # 10 000 in production
    start, _ = await store.snapshot(None, None)
    await store.import_many([make(f"n{i}") for i in range(7)])
    await store.create(make("last"))
    with pytest.raises(OutOfRange, match="start again without a resume_token"):
        await store.changes_after(start, 10)
    newest, _ = await store.snapshot(None, None)
    kept = await store.changes_after(newest - 5, 100)
    assert [c.checkpoint.display_name for c in kept] == ["n3", "n4", "n5", "n6", "last"]
    assert CHANGE_RETENTION == 10_000


async def test_a_write_through_another_store_wakes_and_reaches_this_one(
    store: Store,  # noqa: F811
    store_url: str,  # noqa: F811
) -> None:
    """A second store on the same database (another process) writes; this one wakes and reads it."""
    other = open_store(store_url)
    try:
        start, _ = await store.snapshot(None, None)
        await store.wait_for_change()  # starts listening where the backend listens
        waiting = asyncio.create_task(store.wait_for_change())
        await asyncio.sleep(0.2)
        await other.create(make("elsewhere"))
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.wait_for(waiting, 2)
        assert loop.time() - began < 0.5
        changes = await store.changes_after(start, 10)
        assert [c.checkpoint.display_name for c in changes] == ["elsewhere"]
    finally:
        await other.close()
