"""server.store._core against an in-memory Transaction: the paths a real database rarely takes.

The backends' SQL is tested by test_store.py on SQLite and PostgreSQL; here a dict-backed
transaction can lose the insert race of an import on demand, which no single test process can
make PostgreSQL do reliably, and `run_unsuspended` is held to never hiding a suspension.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

import pytest

from server.domain import ById, ByName, Checkpoint, Lookup, State
from server.errors import Aborted, NotFound, RequestInProgress
from server.store import _core
from server.store._changes import ChangeKind, Pending
from server.store._core import Found, KeyRecord, RequestKey, run_unsuspended
from tests.server.test_store import T0, make

pytestmark = pytest.mark.anyio


class Rows:
    """A dict of rows by seq; `racing` ids are inserted by "another writer" at insert time."""

    def __init__(self, *checkpoints: Checkpoint) -> None:
        self.rows: dict[int, Checkpoint] = dict(enumerate(checkpoints, start=1))
        self.racing: dict[str, Checkpoint | None] = {}
        self.log: list[str] = []
        self.keys: dict[tuple[str, str], KeyRecord] = {}
        self.rival_keys: list[KeyRecord] = []
        """Claims "another replica" stores just before each of our inserts of a key."""
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

    async def find_request(self, scope: str, request_id: str) -> KeyRecord | None:
        return self.keys.get((scope, request_id))

    async def insert_request(self, key: RequestKey, record: KeyRecord) -> bool:
        slot = (key.scope, key.request_id)
        if self.rival_keys:
            self.keys[slot] = self.rival_keys.pop(0)
        if slot in self.keys:
            return False
        self.keys[slot] = record
        return True

    async def replace_request(self, key: RequestKey, record: KeyRecord) -> None:
        self.keys[(key.scope, key.request_id)] = record

    async def complete_request(self, key: RequestKey, result: bytes) -> None:
        slot = (key.scope, key.request_id)
        self.keys[slot] = replace(self.keys[slot], result=result)

    async def drop_request(self, key: RequestKey) -> None:
        self.keys.pop((key.scope, key.request_id), None)

    async def purge_requests(self, now: object) -> int:
        return 0

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


KEY = RequestKey(scope="alice", request_id="r1", fingerprint=b"f")
TTL, LEASE = timedelta(hours=24), timedelta(seconds=60)


async def test_a_claim_losing_the_insert_race_answers_the_rivals_outcome() -> None:
    """When another replica inserted the key first, its completed result is replayed."""
    rows = Rows()
    rows.rival_keys.append(KeyRecord(b"f", b"theirs", T0, T0 + TTL))
    assert await _core.claim_request(rows, KEY, T0, ttl=TTL, lease=LEASE) == b"theirs"


async def test_a_claim_losing_the_race_to_a_running_rival_is_in_progress() -> None:
    """When another replica inserted the key first and still runs it, the claim is refused."""
    rows = Rows()
    rows.rival_keys.append(KeyRecord(b"f", None, T0, T0 + TTL))
    with pytest.raises(RequestInProgress):
        await _core.claim_request(rows, KEY, T0, ttl=TTL, lease=LEASE)


async def test_a_claim_losing_twice_to_vanishing_rivals_is_aborted() -> None:
    """A key inserted and gone again on both looks is ABORTED, never claimed twice."""

    class Vanishing(Rows):
        async def find_request(self, scope: str, request_id: str) -> KeyRecord | None:
            return None

    rows = Vanishing()
    rows.rival_keys += [KeyRecord(b"f", None, T0, T0 + TTL)] * 2
    with pytest.raises(Aborted, match="claimed concurrently"):
        await _core.claim_request(rows, KEY, T0, ttl=TTL, lease=LEASE)


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
