"""The change history every write leaves behind, which watchers read (WatchCheckpoints).

Every create, update, delete and import appends one row per checkpoint it changed to the
`checkpoint_changes` table, in the same transaction as the change itself, so a change is in the
history exactly when it is committed. Its `seq` grows in commit order: SQLite takes the database's
write lock at BEGIN IMMEDIATE, PostgreSQL takes an advisory lock before the insert that is held
until commit. A watcher that has seen everything up to seq S reads `seq > S` and misses nothing.

Retention: the newest CHANGE_RETENTION changes are kept; each write deletes what falls out of that
window (purge on write), so the table never grows beyond it. A resume point older than the window
is OUT_OF_RANGE.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from server.domain import Checkpoint
from server.errors import OutOfRange

CHANGE_RETENTION = 10_000
"""Changes kept in the history: a watcher may resume from any of the newest this many."""


class ChangeKind(enum.Enum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """One committed change: its position in the history, what happened, the checkpoint after
    it (for a delete, its last state)."""

    seq: int
    kind: ChangeKind
    checkpoint: Checkpoint


Changes = list[ChangeRecord]
"""Committed changes, oldest first (an alias, as Store.list shadows the builtin in the class)."""
Snapshot = tuple[int, list[Checkpoint]]
"""The newest change seq and the checkpoints as they were at that seq."""

Pending = tuple[ChangeKind, Checkpoint]
"""A change an algorithm made in the current transaction, recorded before it commits."""


def check_resumable(after: int, newest: int | None) -> None:
    """Refuse a resume point the purge has passed (everything at or below newest - retention).

    Raises:
        OutOfRange: changes after `after` may have been purged.
    """
    if newest is not None and after < newest - CHANGE_RETENTION:
        raise OutOfRange(
            "resume_token is older than the retained change history "
            f"(the newest {CHANGE_RETENTION} changes); start again without a resume_token"
        )


def purge_through(newest: int) -> int:
    """The highest seq a write that recorded up to newest deletes (purge on write)."""
    return newest - CHANGE_RETENTION


def first_gap(after: int, rows: Sequence[ChangeRecord]) -> bool:
    """True when the rows do not start right after `after`, so a purge may lie in between.

    No rows means nothing committed after `after` (a purge keeps the newest changes), so no gap.
    """
    return bool(rows) and rows[0].seq != after + 1
