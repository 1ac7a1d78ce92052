"""The change history on PostgreSQL: commit-ordered appends, reads, and LISTEN/NOTIFY wake-ups.

A write appends its changes under a transaction-scoped advisory lock taken just before the
insert, so the identity `seq` it gets is in commit order across every replica, and notifies the
`checkpoint_changes` channel with the newest seq (delivered at commit). Each process keeps one
listening connection (`Listener`) whose notifications wake its watchers, which then read the
table; while that connection is down they fall back to reading every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from server.domain import Checkpoint, State
from server.store._changes import (
    ChangeKind,
    ChangeRecord,
    Changes,
    Snapshot,
    check_resumable,
    first_gap,
    purge_through,
)

log = logging.getLogger(__name__)

_Conn = psycopg.AsyncConnection[TupleRow]
Convert = Callable[[tuple[Any, ...]], Checkpoint]

CHANNEL = "checkpoint_changes"
FALLBACK_POLL_SECONDS = 1.0
_RECONNECT_SECONDS = 1.0
# The pg_advisory_xact_lock key that orders the history: the bytes of "ckptchgs".
_HISTORY_LOCK = int.from_bytes(b"ckptchgs", "big")
_COLUMNS = (
    "seq, id, display_name, limit_memory_mib, request_memory_mib, request_vcpus, state, "
    "create_time, update_time, version"
)
_INSERT = (
    "INSERT INTO checkpoint_changes (kind, id, display_name, limit_memory_mib,"
    " request_memory_mib, request_vcpus, state, create_time, update_time, version)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


async def record(conn: _Conn, rows: Sequence[tuple[Any, ...]]) -> None:
    """Append rows (kind first, then the checkpoint columns), purge, notify; in conn's open
    transaction, whose commit releases the lock and delivers the notification."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_HISTORY_LOCK,))
    async with conn.cursor() as cur:
        await cur.executemany(_INSERT, rows)  # pipelined: one round trip for an import
        # Under the lock, the newest seq is ours: no other writer can append before commit.
        await cur.execute("SELECT max(seq) FROM checkpoint_changes")
        found = await cur.fetchone()
    newest = int(found[0]) if found and found[0] is not None else 0
    await conn.execute("DELETE FROM checkpoint_changes WHERE seq <= %s", (purge_through(newest),))
    await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(newest)))


async def snapshot(
    conn: _Conn, select: str, convert: Convert, state: State | None, checkpoint_id: Any
) -> Snapshot:
    """The newest seq and the matching checkpoints, read in one REPEATABLE READ snapshot."""
    clauses = [("state = %s", state.value if state else None), ("id = %s", checkpoint_id)]
    used = [(sql, arg) for sql, arg in clauses if arg is not None]
    where = f" WHERE {' AND '.join(sql for sql, _ in used)}" if used else ""
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur = await conn.execute("SELECT max(seq) FROM checkpoint_changes")
        newest = await cur.fetchone()
        cur = await conn.execute(f"{select}{where} ORDER BY seq", [a for _, a in used])
        rows = await cur.fetchall()
    return int(newest[0] or 0) if newest else 0, [convert(row) for row in rows]


async def changes_after(conn: _Conn, convert: Convert, after: int, limit: int) -> Changes:
    """Up to limit changes after `after`, oldest first. Raises OutOfRange past the purge."""
    cur = await conn.execute(
        f"SELECT kind, {_COLUMNS} FROM checkpoint_changes"  # noqa: S608 (constant columns)
        " WHERE seq > %s ORDER BY seq LIMIT %s",
        (after, limit),
    )
    records = [
        ChangeRecord(int(r[1]), ChangeKind(r[0]), convert(r[1:])) for r in await cur.fetchall()
    ]
    if first_gap(after, records):  # identity values may skip: a gap is not always a purge
        cur = await conn.execute("SELECT max(seq) FROM checkpoint_changes")
        newest = await cur.fetchone()
        check_resumable(after, None if newest is None else newest[0])
    return records


class Listener:
    """One LISTEN connection per process; `wait` returns on a notification or a fallback poll."""

    def __init__(self, conninfo: str, kwargs: dict[str, Any]) -> None:
        self._conninfo, self._kwargs = conninfo, kwargs
        self._notified = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        """Wake the waiters now (a write through this process)."""
        self._notified.set()

    async def wait(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="checkpoint-changes-listener")
        with contextlib.suppress(TimeoutError):  # asyncio.timeout: see _sqlite.wait_for_change
            async with asyncio.timeout(FALLBACK_POLL_SECONDS):
                await self._notified.wait()
        self._notified.clear()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=1.0)

    async def _listen(self) -> None:
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, **self._kwargs)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._notified.set()  # anything committed while not listening is read now
                    async for _ in conn.notifies():
                        self._notified.set()
            except psycopg.Error as exc:
                log.warning(
                    "change notifications lost (%s); reading every %.0f s meanwhile",
                    exc,
                    FALLBACK_POLL_SECONDS,
                )
            await asyncio.sleep(_RECONNECT_SECONDS)
