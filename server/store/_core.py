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
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from server.domain import ById, Checkpoint, Lookup, Resources, check_etag, describe, same_content
from server.errors import Aborted, InvalidArgument, NotFound, RequestInProgress
from server.store._changes import ChangeKind, Pending

_T = TypeVar("_T")

Change = Callable[[Checkpoint], Checkpoint]
"""A pure function from the stored checkpoint to its new value; it may raise domain errors."""

Found = tuple[int, Checkpoint]
"""A stored checkpoint with its row's sequence number (the key writes and paging use)."""


@dataclass(frozen=True, slots=True)
class RequestKey:
    """An idempotency key (AIP-155 request_id) as stored: whose, which, and what it asked."""

    scope: str
    """The token name: two clients' keys never collide."""
    request_id: str
    fingerprint: bytes
    """A hash of the request the key was first used with."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A stored key: its request's fingerprint, its outcome (None while running), its times."""

    fingerprint: bytes
    result: bytes | None
    claimed: datetime
    expires: datetime


@dataclass(frozen=True, slots=True)
class Completion:
    """What a keyed create records, in its own transaction: the key and the answer to replay."""

    key: RequestKey
    result: bytes


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

    async def find_request(self, scope: str, request_id: str) -> KeyRecord | None:
        """The stored key (locked until the end of the transaction), or None."""
        ...

    async def insert_request(self, key: RequestKey, record: KeyRecord) -> bool:
        """Store a new key; False (and nothing written) when the key is already stored."""
        ...

    async def replace_request(self, key: RequestKey, record: KeyRecord) -> None:
        """Overwrite the stored key with record."""
        ...

    async def complete_request(self, key: RequestKey, result: bytes) -> None:
        """Record the outcome of the key's request."""
        ...

    async def drop_request(self, key: RequestKey) -> None:
        """Forget the key if it has no outcome yet (its request failed)."""
        ...

    async def purge_requests(self, now: datetime) -> int:
        """Delete every key expired at now; returns how many."""

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


async def create(
    tx: Transaction, checkpoint: Checkpoint, completes: Completion | None = None
) -> Checkpoint:
    """Insert checkpoint (and record the outcome of its key, in the same transaction).

    Raises AlreadyExists.
    """
    await tx.insert(checkpoint)
    await tx.record([(ChangeKind.CREATED, checkpoint)])
    if completes is not None:
        await tx.complete_request(completes.key, completes.result)
    return checkpoint


async def claim_request(
    tx: Transaction, key: RequestKey, now: datetime, *, ttl: timedelta, lease: timedelta
) -> bytes | None:
    """Claim key for its request: None when the caller is to run it, else the result to replay.

    A key unknown, expired (older than ttl) or abandoned (no outcome after lease: its first
    call died) is claimed anew.

    Raises:
        InvalidArgument: the key was used with another request.
        RequestInProgress: the key's first call is still running.
        Aborted: another writer kept claiming the key meanwhile (the caller may retry).
    """
    claim = KeyRecord(key.fingerprint, None, now, now + ttl)
    for _ in range(2):  # a second look only when a racing replica inserted the key first
        found = await tx.find_request(key.scope, key.request_id)
        if found is None:
            if await tx.insert_request(key, claim):
                return None
            continue
        if found.expires <= now or (found.result is None and found.claimed + lease <= now):
            await tx.replace_request(key, claim)
            return None
        if found.fingerprint != key.fingerprint:
            raise InvalidArgument.for_field(
                "request_id", "was already used with a different request; use a new request_id"
            )
        if found.result is not None:
            return found.result
        raise RequestInProgress(
            "a request with this request_id is still in progress; retry after it finishes"
        )
    raise Aborted("the request_id was claimed concurrently; retry")


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
