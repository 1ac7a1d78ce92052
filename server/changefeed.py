"""One reader of the change history per process, fanning each batch out to every watcher in it.

The feed waits on the store (`Store.wait_for_change`: at once after a local write, on a
PostgreSQL notification, or after SQLite's short poll), reads what committed after the last seq it
saw, and hands the same batch to every subscription, so 200 watchers cost one query per wake-up,
not 200. A subscription keeps its own cursor and reads the store itself only to catch up: when it
starts behind the feed, or when it fell more than MAX_PENDING changes behind (a slow client) and
its pending batches were dropped. Duplicates are skipped by seq, so every change is delivered
exactly once, in commit order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator

from server.errors import CheckpointError, OutOfRange, Unavailable
from server.store import ChangeRecord, Store

log = logging.getLogger(__name__)

BATCH = 500
"""Changes read per query."""
MAX_PENDING = 1000
"""Changes a subscription may hold unread before it is dropped to catching up from the store."""
NO_CHECKPOINT = "00000000-0000-0000-0000-000000000000"
"""The nil UUID: no checkpoint has it (ids are random), so a snapshot of it is just the seq."""
_RETRY_SECONDS = 1.0
SHUTDOWN_MESSAGE = (
    "the server is shutting down; resume on another replica with the last resume_token"
)


class Subscription:
    """One watcher's place in the history: its cursor and the batches it has not read yet."""

    __slots__ = ("_wake", "behind", "closed", "cursor", "pending")

    def __init__(self, cursor: int) -> None:
        self.cursor = cursor
        self.pending: deque[ChangeRecord] = deque()
        self.behind = True  # it reads the store once at the start, to catch up with the feed
        self.closed = False
        self._wake = asyncio.Event()

    def push(self, batch: list[ChangeRecord]) -> None:
        if self.behind:
            return
        if len(self.pending) + len(batch) > MAX_PENDING:
            self.fall_behind()
            return
        self.pending.extend(batch)
        self._wake.set()

    def fall_behind(self) -> None:
        """Drop the pending batches: the next read catches up from the store."""
        self.pending.clear()
        self.behind = True
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def wait(self) -> None:
        await self._wake.wait()
        self._wake.clear()


class ChangeFeed:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._subscriptions: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._last: int | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self._subscriptions)

    def subscribe(self, cursor: int) -> Subscription:
        """A subscription delivering every change after cursor.

        Raises:
            Unavailable: the feed is closed (the server is shutting down).
        """
        if self._closed:
            raise Unavailable(SHUTDOWN_MESSAGE)
        sub = Subscription(cursor)
        self._subscriptions.add(sub)
        if self._task is None:
            self._last = cursor
            self._task = asyncio.create_task(self._run(), name="checkpoint-change-feed")
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscriptions.discard(sub)

    async def changes(self, sub: Subscription) -> AsyncIterator[ChangeRecord]:
        """Every change after the subscription's cursor, once each, in commit order.

        Raises:
            OutOfRange: the subscription fell behind the retained history.
            Unavailable: the feed was closed.
        """
        store = self._store
        while True:
            if sub.closed:
                raise Unavailable(SHUTDOWN_MESSAGE)
            if sub.behind:
                sub.behind = False
                sub.pending.clear()
                while True:
                    rows = await store.changes_after(sub.cursor, BATCH)
                    for record in rows:
                        sub.cursor = record.seq
                        yield record
                    if len(rows) < BATCH or sub.closed:
                        break
                continue
            while sub.pending and not sub.behind:
                record = sub.pending.popleft()
                if record.seq > sub.cursor:
                    sub.cursor = record.seq
                    yield record
            if not sub.pending and not sub.behind and not sub.closed:
                await sub.wait()

    async def close(self) -> None:
        """End every subscription with UNAVAILABLE and stop reading."""
        self._closed = True
        for sub in self._subscriptions:
            sub.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=1.0)  # never hold a shutdown

    async def _run(self) -> None:
        store = self._store
        while True:
            await store.wait_for_change()
            try:
                await self._read_all(store)
            except OutOfRange:
                # More than the history holds committed at once (a huge import): every
                # subscription catches up (or fails) on its own; the feed starts at the newest.
                for sub in self._subscriptions:
                    sub.fall_behind()
                self._last = None
            except CheckpointError as exc:
                log.warning("cannot read the change history (%s); retrying", exc)
                await asyncio.sleep(_RETRY_SECONDS)
            except Exception:  # a bug must not silently stop every watch of the process
                log.exception("unexpected error reading the change history; retrying")
                await asyncio.sleep(_RETRY_SECONDS)

    async def _read_all(self, store: Store) -> None:
        if self._last is None:
            self._last, _ = await store.snapshot(None, NO_CHECKPOINT)
        while True:
            rows = await store.changes_after(self._last, BATCH)
            if not rows:
                return
            self._last = rows[-1].seq
            for sub in self._subscriptions:
                sub.push(rows)
            if len(rows) < BATCH:
                return
