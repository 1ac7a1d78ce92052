"""The embedded SQLite store: WAL, synchronous=FULL, reads on the event loop, writes on one thread.

Point reads on indexed columns take microseconds, so they run inline (and a get is answered from
`_read_cache` while the file is unchanged); every write runs on a single writer thread inside
BEGIN IMMEDIATE, so writes never block the loop and never interleave. The
algorithms are `_core`'s; this module supplies their SQL (`_Rows`) and its error translation.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from server.domain import ById, Checkpoint, Lookup, Resources, State
from server.errors import AlreadyExists, InvalidArgument, Unavailable
from server.store import _core
from server.store._changes import (
    ChangeKind,
    ChangeRecord,
    Changes,
    Pending,
    Snapshot,
    check_resumable,
    first_gap,
    purge_through,
)
from server.store._core import (
    Change,
    Completion,
    Found,
    RequestKey,
    resource_columns,
    run_unsuspended,
)
from server.store._read_cache import ReadCache
from server.store._schema import SQLITE_MIGRATIONS
from server.store._sqlite_requests import RequestRows, from_micros, micros

_T = TypeVar("_T")

_COLUMNS = (
    "seq, id, display_name, limit_memory_mib, request_memory_mib, request_vcpus, state, "
    "create_time_us, update_time_us, version"
)
_SELECT = f"SELECT {_COLUMNS} FROM checkpoints"  # noqa: S608 (constant column list)
_INSERT = (
    "INSERT INTO checkpoints (id, display_name, limit_memory_mib, request_memory_mib,"
    " request_vcpus, state, create_time_us, update_time_us, version)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_CHANGE_SELECT = f"SELECT kind, {_COLUMNS} FROM checkpoint_changes"  # noqa: S608 (constant)
_Row = tuple[int, str, str, int, int, int, str, int, int, int]

POLL_SECONDS = 0.05
"""How often watchers look for changes other processes committed to the same file."""


def sqlite_path(url: str) -> str:
    """The file path of sqlite:///relative, sqlite:////absolute or sqlite:///:memory:.

    Raises:
        InvalidArgument: the URL names no path.
    """
    parts = urlsplit(url)
    path = unquote(parts.path)
    if parts.netloc or not path.startswith("/") or path == "/":
        raise InvalidArgument(
            f"invalid SQLite URL {url!r}: use sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    return path[1:]


class SQLiteStore:
    def __init__(self, target: str, uri: bool) -> None:
        self._target, self._uri = target, uri
        self._reader = self._connect()
        self._writer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._writer: sqlite3.Connection | None = None
        self._wrote = asyncio.Event()
        self._migrate()
        self._cache = ReadCache(self._reader)

    @classmethod
    def open(cls, url: str) -> SQLiteStore:
        """Open (creating if needed) the database a sqlite:/// URL names and apply migrations."""
        path = sqlite_path(url)
        if path == ":memory:":
            # A private shared-cache database, so the reader and the writer see the same data.
            return cls(f"file:checkpoints-{uuid.uuid4().hex}?mode=memory&cache=shared", uri=True)
        if Path(path).parent != Path() and not Path(path).parent.is_dir():
            raise InvalidArgument(f"directory of the SQLite database does not exist: {path}")
        return cls(path, uri=False)

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self._target, uri=self._uri, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA busy_timeout = 5000")
            # Durability (api-contract.md): an acknowledged write survives a machine crash.
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            raise Unavailable(f"cannot open the SQLite database: {exc}") from exc
        return conn

    def _migrate(self) -> None:
        conn = self._reader
        with _TRANSLATED, _transaction(conn):
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)"
            )
            applied = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
            for version, statements in SQLITE_MIGRATIONS:
                if version in applied:
                    continue
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations (version) VALUES (?)", (version,))

    # -- reads: inline on the caller's thread -------------------------------------------------

    async def get(self, lookup: Lookup) -> Checkpoint:
        with _TRANSLATED:
            entries = self._cache.current()
            found = entries.get(lookup)
            if found is None:
                # Unsuspended: nothing else reads between the version check and this SELECT.
                found = run_unsuspended(_core.get(_Rows(self._reader), lookup))
                self._cache.keep(entries, lookup, found)
            return found

    async def list(
        self, *, state: State | None, after: int, limit: int
    ) -> list[tuple[int, Checkpoint]]:
        if state is None:
            sql, args = f"{_SELECT} WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        else:
            sql = f"{_SELECT} WHERE state = ? AND seq > ? ORDER BY seq LIMIT ?"
            args = (state.value, after, limit)  # type: ignore[assignment]
        with _TRANSLATED:
            rows = self._reader.execute(sql, args).fetchall()
        return [(row[0], _to_checkpoint(row)) for row in rows]

    async def secret(self, name: str) -> bytes:
        def make(conn: sqlite3.Connection) -> bytes:
            conn.execute(
                "INSERT OR IGNORE INTO store_secrets (name, value) VALUES (?, ?)",
                (name, secrets.token_bytes(32)),
            )
            (value,) = conn.execute(
                "SELECT value FROM store_secrets WHERE name = ?", (name,)
            ).fetchone()
            return bytes(value)

        return await self._write(make)

    async def ping(self) -> None:
        with _TRANSLATED:
            self._reader.execute("SELECT 1").fetchone()

    # -- the change history (server.store._changes) -------------------------------------------

    async def snapshot(self, state: State | None, checkpoint_id: str | None) -> Snapshot:
        clauses = [("state = ?", state.value if state else None), ("id = ?", checkpoint_id)]
        used = [(sql, arg) for sql, arg in clauses if arg is not None]
        where = f" WHERE {' AND '.join(sql for sql, _ in used)}" if used else ""
        conn = self._reader
        with _TRANSLATED, _transaction(conn, "BEGIN"):  # one read snapshot for both
            (newest,) = conn.execute("SELECT max(seq) FROM checkpoint_changes").fetchone()
            rows = conn.execute(f"{_SELECT}{where} ORDER BY seq", [a for _, a in used]).fetchall()
        return newest or 0, [_to_checkpoint(row) for row in rows]

    async def changes_after(self, after: int, limit: int) -> Changes:
        conn = self._reader
        with _TRANSLATED:
            rows = conn.execute(
                f"{_CHANGE_SELECT} WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
            ).fetchall()
            records = [ChangeRecord(r[1], ChangeKind(r[0]), _to_checkpoint(r[1:])) for r in rows]
            if first_gap(after, records):
                (newest,) = conn.execute("SELECT max(seq) FROM checkpoint_changes").fetchone()
                check_resumable(after, newest)
        return records

    async def wait_for_change(self) -> None:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
        # arrives as the wait ends, and the change feed would never stop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(POLL_SECONDS):
                await self._wrote.wait()
        self._wrote.clear()

    # -- writes: one thread, one transaction each ---------------------------------------------

    async def create(
        self, checkpoint: Checkpoint, completes: Completion | None = None
    ) -> Checkpoint:
        return await self._write(
            lambda conn: run_unsuspended(_core.create(_Rows(conn), checkpoint, completes))
        )

    async def claim_request(
        self, key: RequestKey, now: datetime, *, ttl: timedelta, lease: timedelta
    ) -> bytes | None:
        return await self._write(
            lambda conn: run_unsuspended(
                _core.claim_request(_Rows(conn), key, now, ttl=ttl, lease=lease)
            )
        )

    async def release_request(self, key: RequestKey) -> None:
        await self._write(lambda conn: run_unsuspended(_Rows(conn).drop_request(key)))

    async def purge_requests(self, now: datetime) -> int:
        return await self._write(lambda conn: run_unsuspended(_Rows(conn).purge_requests(now)))

    async def update(self, lookup: Lookup, change: Change) -> Checkpoint:
        return await self._write(
            lambda conn: run_unsuspended(_core.update(_Rows(conn), lookup, change))
        )

    async def delete(self, lookup: Lookup, expected_etag: str) -> Checkpoint:
        return await self._write(
            lambda conn: run_unsuspended(_core.delete(_Rows(conn), lookup, expected_etag))
        )

    async def import_many(self, checkpoints: Sequence[Checkpoint]) -> int:
        return await self._write(
            lambda conn: run_unsuspended(_core.import_many(_Rows(conn), checkpoints))
        )

    async def close(self) -> None:
        if self._writer is not None:
            self._writer_pool.submit(self._writer.close).result()
        self._writer_pool.shutdown(wait=True)
        self._reader.close()

    async def _write(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._writer_pool, self._in_transaction, work
            )
        finally:
            self._wrote.set()  # this process's watchers look at once, without waiting a poll

    def _in_transaction(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._writer is None:
            self._writer = self._connect()
        with _TRANSLATED, _transaction(self._writer):
            return work(self._writer)


class _Rows(RequestRows):
    """The SQL of `_core.Transaction` on one connection; its calls never suspend.

    A write runs inside BEGIN IMMEDIATE on the single writer, so a found row cannot change
    before the transaction ends: no row lock is needed.
    """

    async def find(self, lookup: Lookup) -> Found | None:
        if isinstance(lookup, ById):
            sql, key = f"{_SELECT} WHERE id = ?", lookup.id
        else:
            sql, key = f"{_SELECT} WHERE display_name = ?", lookup.display_name
        row: _Row | None = self._conn.execute(sql, (key,)).fetchone()
        return None if row is None else (row[0], _to_checkpoint(row))

    async def insert(self, c: Checkpoint, *, skip_existing_id: bool = False) -> bool:
        cur = self._conn.execute(
            _INSERT + " ON CONFLICT (id) DO NOTHING" if skip_existing_id else _INSERT,
            (
                c.id,
                c.display_name,
                *resource_columns(c.resources),
                c.state.value,
                micros(c.create_time),
                micros(c.update_time),
                c.version,
            ),
        )
        return cur.rowcount == 1

    async def replace(self, seq: int, c: Checkpoint) -> None:
        self._conn.execute(
            "UPDATE checkpoints SET display_name = ?, limit_memory_mib = ?,"
            " request_memory_mib = ?, request_vcpus = ?, state = ?, create_time_us = ?,"
            " update_time_us = ?, version = ? WHERE seq = ?",
            (
                c.display_name,
                *resource_columns(c.resources),
                c.state.value,
                micros(c.create_time),
                micros(c.update_time),
                c.version,
                seq,
            ),
        )

    async def remove(self, seq: int) -> None:
        self._conn.execute("DELETE FROM checkpoints WHERE seq = ?", (seq,))

    async def record(self, changes: Sequence[Pending]) -> None:
        # BEGIN IMMEDIATE holds the database's one write lock: seq order is commit order.
        self._conn.executemany(
            "INSERT INTO checkpoint_changes (kind, id, display_name, limit_memory_mib,"
            " request_memory_mib, request_vcpus, state, create_time_us, update_time_us, version)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    kind.value,
                    c.id,
                    c.display_name,
                    *resource_columns(c.resources),
                    c.state.value,
                    micros(c.create_time),
                    micros(c.update_time),
                    c.version,
                )
                for kind, c in changes
            ],
        )
        (newest,) = self._conn.execute("SELECT max(seq) FROM checkpoint_changes").fetchone()
        self._conn.execute(
            "DELETE FROM checkpoint_changes WHERE seq <= ?", (purge_through(newest),)
        )


@contextmanager
def _transaction(conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (domain errors included)."""
    conn.execute(begin)
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class _Translated:
    """Turn sqlite3 errors into the service's errors; the SQL text never leaves this module.

    A class with no state, so every read reuses the one instance: a generator-based context
    manager cost each point read a generator and a wrapper object."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if isinstance(exc, sqlite3.IntegrityError):
            if "display_name" in str(exc):
                raise AlreadyExists("a checkpoint with this display name already exists") from exc
            if "checkpoints.id" in str(exc):
                raise AlreadyExists("a checkpoint with this id already exists") from exc
            raise InvalidArgument("the checkpoint breaks a rule of the store") from exc
        if isinstance(exc, sqlite3.Error):
            raise Unavailable("the checkpoint store is unavailable") from exc


_TRANSLATED = _Translated()


def _to_checkpoint(row: _Row) -> Checkpoint:
    _, id_, name, lim, req, cpus, state, created, updated, version = row
    return Checkpoint(
        id=id_,
        display_name=name,
        resources=Resources(limit_memory_mib=lim, request_memory_mib=req, request_vcpus=cpus),
        state=State(state),
        create_time=from_micros(created),
        update_time=from_micros(updated),
        version=version,
    )
