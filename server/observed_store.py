"""A Store wrapper that runs each data operation through one hook: the base of the traced and
the metered store (server/traced_store.py, server/metered_store.py).

Every operation that reads or writes data goes through `observe(operation, pending)`; the
change-feed reads (snapshot, changes_after, wait_for_change), which run in the watchers'
background loop rather than in a call, and close pass straight through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from server.domain import Checkpoint, Lookup, State
from server.store import Change, Changes, Completion, RequestKey, Snapshot, Store

T = TypeVar("T")


def backend_name(url: str) -> str:
    """The backend a database URL picks, by OpenTelemetry's db.system names: sqlite or
    postgresql."""
    scheme = url.split(":", 1)[0].lower()
    return "postgresql" if scheme == "postgres" else scheme


class ObservedStore:
    """Store, each operation passed through observe (override it)."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner

    async def observe(self, operation: str, pending: Awaitable[T]) -> T:
        return await pending

    async def get(self, lookup: Lookup) -> Checkpoint:
        return await self.observe("get", self._inner.get(lookup))

    async def list(
        self, *, state: State | None, after: int, limit: int
    ) -> list[tuple[int, Checkpoint]]:
        return await self.observe("list", self._inner.list(state=state, after=after, limit=limit))

    async def create(
        self, checkpoint: Checkpoint, completes: Completion | None = None
    ) -> Checkpoint:
        return await self.observe("create", self._inner.create(checkpoint, completes))

    async def update(self, lookup: Lookup, change: Change) -> Checkpoint:
        return await self.observe("update", self._inner.update(lookup, change))

    async def delete(self, lookup: Lookup, expected_etag: str) -> Checkpoint:
        return await self.observe("delete", self._inner.delete(lookup, expected_etag))

    async def import_many(self, checkpoints: Sequence[Checkpoint]) -> int:
        return await self.observe("import", self._inner.import_many(checkpoints))

    async def claim_request(
        self, key: RequestKey, now: datetime, *, ttl: timedelta, lease: timedelta
    ) -> bytes | None:
        return await self.observe(
            "claim_request", self._inner.claim_request(key, now, ttl=ttl, lease=lease)
        )

    async def release_request(self, key: RequestKey) -> None:
        await self.observe("release_request", self._inner.release_request(key))

    async def purge_requests(self, now: datetime) -> int:
        return await self.observe("purge_requests", self._inner.purge_requests(now))

    async def secret(self, name: str) -> bytes:
        return await self.observe("secret", self._inner.secret(name))

    async def ping(self) -> None:
        await self.observe("ping", self._inner.ping())

    async def snapshot(self, state: State | None, checkpoint_id: str | None) -> Snapshot:
        return await self._inner.snapshot(state, checkpoint_id)

    async def changes_after(self, after: int, limit: int) -> Changes:
        return await self._inner.changes_after(after, limit)

    async def wait_for_change(self) -> None:
        await self._inner.wait_for_change()

    async def close(self) -> None:
        await self._inner.close()
