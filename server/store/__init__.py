"""Where checkpoints live: one Store protocol, chosen by database URL.

Every implementation raises only the errors of `server.errors` (driver errors are wrapped inside
the store, `from exc`), so the servicer never sees a driver exception or a SQL fragment. The
algorithms are written once in `_core`; `_sqlite` and `_postgres` supply the SQL. A backend is
imported only when a URL names it, so the PostgreSQL driver is an extra a SQLite install lacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from server.domain import Checkpoint, Lookup, State
from server.errors import InvalidArgument, missing_extra
from server.store._changes import CHANGE_RETENTION, ChangeKind, ChangeRecord, Changes, Snapshot
from server.store._core import Change, Completion, RequestKey

__all__ = [
    "CHANGE_RETENTION",
    "Change",
    "ChangeKind",
    "ChangeRecord",
    "Changes",
    "Completion",
    "RequestKey",
    "Snapshot",
    "Store",
    "migrate",
    "open_store",
    "redact_url",
]


class Store(Protocol):
    async def get(self, lookup: Lookup) -> Checkpoint:
        """The checkpoint the lookup names. Raises NotFound."""
        ...

    async def list(
        self, *, state: State | None, after: int, limit: int
    ) -> list[tuple[int, Checkpoint]]:
        """Up to limit (sequence number, checkpoint) pairs after `after`, in creation order."""
        ...

    async def create(
        self, checkpoint: Checkpoint, completes: Completion | None = None
    ) -> Checkpoint:
        """Insert a new checkpoint. Raises AlreadyExists when its display name is taken.

        With completes, the outcome of its idempotency key is recorded in the same transaction.
        """
        ...

    async def claim_request(
        self, key: RequestKey, now: datetime, *, ttl: timedelta, lease: timedelta
    ) -> bytes | None:
        """Claim an idempotency key: None to run the request, else the stored result to replay.

        Raises InvalidArgument (another request), RequestInProgress (the first still runs).
        """
        ...

    async def release_request(self, key: RequestKey) -> None:
        """Forget a claimed key whose request failed, so a retry runs it again."""
        ...

    async def purge_requests(self, now: datetime) -> int:
        """Delete the idempotency keys expired at now; returns how many."""
        ...

    async def update(self, lookup: Lookup, change: Change) -> Checkpoint:
        """Apply change to the stored checkpoint in one transaction and store the result."""
        ...

    async def delete(self, lookup: Lookup, expected_etag: str) -> Checkpoint:
        """Remove a checkpoint (if expected_etag is empty or current) and return it."""
        ...

    async def import_many(self, checkpoints: Sequence[Checkpoint]) -> int:
        """Insert or replace by id, all in one transaction; returns how many were written."""
        ...

    async def secret(self, name: str) -> bytes:
        """A random key made once per store and shared by every replica using it."""
        ...

    async def ping(self) -> None:
        """Raise Unavailable when the store cannot answer."""
        ...

    async def snapshot(self, state: State | None, checkpoint_id: str | None) -> Snapshot:
        """The newest change seq and the checkpoints matching the filters, read at one instant.

        checkpoint_id, when given, is a canonical id; state, when given, filters by state.
        """
        ...

    async def changes_after(self, after: int, limit: int) -> Changes:
        """Up to limit committed changes with seq > after, in commit order.

        Raises:
            OutOfRange: changes after `after` have been purged (see CHANGE_RETENTION).
        """
        ...

    async def wait_for_change(self) -> None:
        """Return when changes may have committed: at once after a write through this store
        or a notification from another process, else after the backend's poll interval."""
        ...

    async def close(self) -> None: ...


def redact_url(url: str) -> str:
    """A database URL fit for output: any password replaced by "***"."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def open_store(url: str, pool_size: int = 10) -> Store:
    """Open the store a URL names: sqlite:///PATH (the default engine) or postgresql://....

    postgres:// is another spelling of postgresql://. pool_size is the number of PostgreSQL
    connections each replica keeps (the SQLite store has one writer and ignores it). SQLite is
    opened and migrated here; PostgreSQL, whose pool is asynchronous, connects and migrates on
    the store's first call (the server makes one at startup), raising Unavailable there.

    Raises:
        InvalidArgument: the URL's scheme is not one the service knows, or the URL is invalid.
        InvalidArgument: the URL needs a driver this installation lacks (the message names the
            extra that installs it).
        Unavailable: the SQLite database cannot be opened.
    """
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        from server.store._sqlite import SQLiteStore

        return SQLiteStore.open(url)
    if scheme in ("postgresql", "postgres"):
        # Imported here so that a SQLite deployment never loads (or needs) the PostgreSQL driver.
        try:
            from server.store._postgres import PostgresStore
        except ImportError as exc:
            error = missing_extra(exc, "PostgreSQL", "postgres", ("psycopg", "psycopg_pool"))
            if error is None:
                raise
            raise error from exc

        return PostgresStore.open(url, pool_size=pool_size)
    raise InvalidArgument(
        f"unsupported database URL scheme {scheme!r}: use sqlite:///PATH or postgresql://..."
    )


async def migrate(url: str) -> None:
    """Open the store once and close it: its migrations are applied (`serve --workers` does
    this before its workers start, so they never race to migrate)."""
    store = open_store(url)
    try:
        await store.ping()
    finally:
        await store.close()
