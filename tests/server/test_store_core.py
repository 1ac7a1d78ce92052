"""server.store._core against an in-memory Transaction: the paths a real database rarely takes.

The backends' SQL is tested by test_store.py on SQLite and PostgreSQL; here a dict-backed
transaction can lose the insert race of an import on demand, which no single test process can
make PostgreSQL do reliably, and `run_unsuspended` is held to never hiding a suspension.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import pytest

from server.domain import ById, ByName, Checkpoint, Lookup, State
from server.errors import Aborted, NotFound
from server.store import _core
from server.store._changes import ChangeKind, Pending
from server.store._core import Found, run_unsuspended
from tests.server.test_store import make

pytestmark = pytest.mark.anyio


class Rows:
    """A dict of rows by seq; `racing` ids are inserted by "another writer" at insert time."""

    def __init__(self, *checkpoints: Checkpoint) -> None:
        self.rows: dict[int, Checkpoint] = dict(enumerate(checkpoints, start=1))
        self.racing: dict[str, Checkpoint | None] = {}
        self.log: list[str] = []
        self.recorded: list[Pending] = []

    async def find(self, lookup: Lookup) -> Found | None:
        for seq, c in self.rows.items():
            if (isinstance(lookup, ById) and c.id == lookup.id) or (
                isinstance(lookup, ByName) and c.display_name == lookup.display_name
            ):
                return seq, c
        return None

    async def insert(self, checkpoint: Checkpoint, *, skip_existing_id: bool = False) -> bool:
        if checkpoint.id in self.racing:
            rival = self.racing.pop(checkpoint.id)
            if rival is not None:
                self.rows[len(self.rows) + 1] = rival
            self.log.append(f"lost {checkpoint.display_name}")
            return False
        self.rows[len(self.rows) + 1] = checkpoint
        self.log.append(f"insert {checkpoint.display_name}")
        return True

    async def replace(self, seq: int, checkpoint: Checkpoint) -> None:
        self.rows[seq] = checkpoint
        self.log.append(f"replace {seq} v{checkpoint.version}")

    async def remove(self, seq: int) -> None:
        del self.rows[seq]
        self.log.append(f"remove {seq}")

    async def record(self, changes: Sequence[Pending]) -> None:
        self.recorded.extend(changes)


async def test_update_and_delete_of_a_missing_row_are_not_found_and_write_nothing() -> None:
    rows = Rows()
    with pytest.raises(NotFound, match="not found"):
        await _core.update(rows, ByName("nope"), lambda c: c)
    with pytest.raises(NotFound):
        await _core.delete(rows, ByName("nope"), "")
    assert rows.log == []


async def test_delete_with_a_stale_etag_is_aborted_and_removes_nothing() -> None:
    rows = Rows(make("a"))
    with pytest.raises(Aborted):
        await _core.delete(rows, ByName("a"), "v7")
    assert rows.log == []
    assert (await _core.delete(rows, ByName("a"), "v1")).display_name == "a"
    assert rows.log == ["remove 1"]


async def test_import_bumps_the_version_of_changed_rows_and_skips_unchanged_ones() -> None:
    stored = make("a")
    rows = Rows(stored)
    changed = replace(stored, state=State.READY)
    assert await _core.import_many(rows, [stored, changed, make("b")]) == 2
    assert rows.log == ["replace 1 v2", "insert b"]


async def test_import_losing_the_insert_race_treats_the_id_as_existing() -> None:
    incoming = make("a")
    rows = Rows()
    rows.racing[incoming.id] = replace(incoming, state=State.FAILED, version=4)
    assert await _core.import_many(rows, [incoming]) == 1
    assert rows.log == ["lost a", "replace 1 v5"]
    assert rows.rows[1].state == State.CREATING


async def test_import_whose_raced_row_vanished_again_is_aborted() -> None:
    incoming = make("a")
    rows = Rows()
    rows.racing[incoming.id] = None
    with pytest.raises(Aborted, match="retry"):
        await _core.import_many(rows, [incoming])


def test_run_unsuspended_returns_the_value_and_propagates_errors() -> None:
    rows = Rows(make("a"))
    assert run_unsuspended(_core.get(rows, ByName("a"))).display_name == "a"
    with pytest.raises(NotFound):
        run_unsuspended(_core.get(rows, ByName("b")))


def test_run_unsuspended_refuses_a_coroutine_that_suspends() -> None:
    closed = []

    async def suspends() -> int:
        try:
            await asyncio.sleep(0)
        finally:
            closed.append(True)
        return 1

    with pytest.raises(RuntimeError, match="suspended"):
        run_unsuspended(suspends())
    assert closed == [True]


async def test_every_algorithm_records_its_change_once_and_refusals_record_nothing() -> None:
    """Create, update, delete and import each record what they changed; a refused write nothing."""
    a, b = make("a"), make("b")
    rows = Rows()
    await _core.create(rows, a)
    updated = await _core.update(rows, ById(a.id), lambda c: replace(c, version=c.version + 1))
    with pytest.raises(Aborted):
        await _core.delete(rows, ById(a.id), "stale")
    await _core.delete(rows, ById(a.id), "")
    assert await _core.import_many(rows, [b, b]) == 1
    assert [(kind, c.id) for kind, c in rows.recorded] == [
        (ChangeKind.CREATED, a.id),
        (ChangeKind.UPDATED, a.id),
        (ChangeKind.DELETED, a.id),
        (ChangeKind.CREATED, b.id),
    ]
    assert rows.recorded[2][1] == updated
