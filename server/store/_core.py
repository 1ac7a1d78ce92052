"""The store's algorithms, written once; each backend supplies only a `Transaction` of SQL.

Get, create, update, delete and import read and write rows through the four primitives below,
so the rules (NotFound, the etag check, the version bump of an import, the lost insert race) hold
the same on every backend. Each algorithm runs inside one backend transaction: the backend opens
it, row locks included (PostgreSQL's SELECT ... FOR UPDATE, SQLite's BEGIN IMMEDIATE), commits or
rolls back, and turns driver errors into `server.errors`.

The primitives are coroutines so that PostgreSQL can await its driver. SQLite's never suspend,
which lets its writer thread, which has no event loop, run an algorithm with `run_unsuspended`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from typing import Any, Protocol, TypeVar

from server.domain import ById, Checkpoint, Lookup, Resources, check_etag, describe, same_content
from server.errors import Aborted, NotFound
from server.store._changes import ChangeKind, Pending

_T = TypeVar("_T")

Change = Callable[[Checkpoint], Checkpoint]
"""A pure function from the stored checkpoint to its new value; it may raise domain errors."""

Found = tuple[int, Checkpoint]
"""A stored checkpoint with its row's sequence number (the key writes and paging use)."""


class Transaction(Protocol):
    """The SQL a backend supplies; every call runs in the one transaction the backend opened."""

    async def find(self, lookup: Lookup) -> Found | None:
        """The row the lookup names (locked until the end of a write transaction), or None."""
        ...

    async def insert(self, checkpoint: Checkpoint, *, skip_existing_id: bool = False) -> bool:
        """Insert a row; with skip_existing_id, an existing id is left alone and False returned.

        Raises:
            AlreadyExists: the display name (or, without skip_existing_id, the id) is taken.
        """
        ...

    async def replace(self, seq: int, checkpoint: Checkpoint) -> None:
        """Overwrite the row seq with checkpoint (its id is kept)."""
        ...

    async def remove(self, seq: int) -> None:
        """Delete the row seq."""
        ...

    async def record(self, changes: Sequence[Pending]) -> None:
        """Append changes to the change history (server.store._changes), in this transaction.

        Called once, as the algorithm's last step, so that the history's commit-order lock is
        held for as short a time as possible and never while waiting for a row lock.
        """
        ...


def _existing(found: Found | None, lookup: Lookup) -> Found:
    if found is None:
        raise NotFound(f"{describe(lookup)} not found")
    return found


async def get(tx: Transaction, lookup: Lookup) -> Checkpoint:
    """The checkpoint the lookup names. Raises NotFound."""
    return _existing(await tx.find(lookup), lookup)[1]


async def create(tx: Transaction, checkpoint: Checkpoint) -> Checkpoint:
    """Insert checkpoint and return it. Raises AlreadyExists."""
    await tx.insert(checkpoint)
    await tx.record([(ChangeKind.CREATED, checkpoint)])
    return checkpoint


async def update(tx: Transaction, lookup: Lookup, change: Change) -> Checkpoint:
    """Read the row, apply change (which checks etag and state rules), write the result."""
    seq, current = _existing(await tx.find(lookup), lookup)
    new = change(current)
    await tx.replace(seq, new)
    await tx.record([(ChangeKind.UPDATED, new)])
    return new


async def delete(tx: Transaction, lookup: Lookup, expected_etag: str) -> Checkpoint:
    """Remove the row if expected_etag is empty or current, and return what it held."""
    seq, current = _existing(await tx.find(lookup), lookup)
    check_etag(current, expected_etag)
    await tx.remove(seq)
    await tx.record([(ChangeKind.DELETED, current)])
    return current


async def import_many(tx: Transaction, checkpoints: Sequence[Checkpoint]) -> int:
    """Insert or replace by id; an unchanged checkpoint is not written. Returns the writes.

    A replaced checkpoint gets the stored version plus one, so its etag changes. An id another
    writer inserts between our read and our insert counts as existing; one that also vanishes
    again meanwhile aborts the whole import (the caller retries).
    """
    changes: list[Pending] = []
    for checkpoint in checkpoints:
        found = await tx.find(ById(checkpoint.id))
        if found is None:
            if await tx.insert(checkpoint, skip_existing_id=True):
                changes.append((ChangeKind.CREATED, checkpoint))
                continue
            found = await tx.find(ById(checkpoint.id))
            if found is None:
                raise Aborted(
                    "a checkpoint being imported changed concurrently; nothing was imported, retry"
                )
        seq, current = found
        if not same_content(current, checkpoint):
            new = replace(checkpoint, version=current.version + 1)
            await tx.replace(seq, new)
            changes.append((ChangeKind.UPDATED, new))
    if changes:
        await tx.record(changes)
    return len(changes)


def resource_columns(r: Resources) -> tuple[int, int, int]:
    """The resources in column order: limit_memory_mib, request_memory_mib, request_vcpus."""
    return (r.limit_memory_mib, r.request_memory_mib, r.request_vcpus)


def run_unsuspended(step: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine that never suspends to its end, without an event loop.

    Raises:
        RuntimeError: the coroutine suspended (a primitive awaited real I/O); it is closed.
    """
    try:
        step.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    step.close()
    raise RuntimeError("a store step that must run without an event loop suspended")
