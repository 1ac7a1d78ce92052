"""The embedded SQLite store: WAL, synchronous=FULL, reads on the event loop, writes on one thread.

Point reads on indexed columns take microseconds, so they run inline; every write runs on a single
writer thread inside BEGIN IMMEDIATE, so writes never block the loop and never interleave.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from server.domain import (
    ById,
    Checkpoint,
    Lookup,
    Resources,
    State,
    check_etag,
    describe,
    same_content,
)
from server.errors import AlreadyExists, InvalidArgument, NotFound, Unavailable
from server.store import Change
from server.store._schema import SQLITE_MIGRATIONS

_T = TypeVar("_T")

_COLUMNS = (
    "seq, id, display_name, limit_memory_mib, request_memory_mib, request_vcpus, state, "
    "create_time_us, update_time_us, version"
)
_SELECT = f"SELECT {_COLUMNS} FROM checkpoints"  # noqa: S608 (constant column list)
_Row = tuple[int, str, str, int, int, int, str, int, int, int]


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
        self._migrate()

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
        with _translated(), _transaction(conn):
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
        with _translated():
            row = _find(self._reader, lookup)
        if row is None:
            raise NotFound(f"{describe(lookup)} not found")
        return _to_checkpoint(row)

    async def list(
        self, *, state: State | None, after: int, limit: int
    ) -> list[tuple[int, Checkpoint]]:
        if state is None:
            sql, args = f"{_SELECT} WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        else:
            sql = f"{_SELECT} WHERE state = ? AND seq > ? ORDER BY seq LIMIT ?"
            args = (state.value, after, limit)  # type: ignore[assignment]
        with _translated():
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
        with _translated():
            self._reader.execute("SELECT 1").fetchone()

    # -- writes: one thread, one transaction each ---------------------------------------------

    async def create(self, checkpoint: Checkpoint) -> Checkpoint:
        def insert(conn: sqlite3.Connection) -> Checkpoint:
            _insert(conn, checkpoint)
            return checkpoint

        return await self._write(insert)

    async def update(self, lookup: Lookup, change: Change) -> Checkpoint:
        def run(conn: sqlite3.Connection) -> Checkpoint:
            row = _find(conn, lookup)
            if row is None:
                raise NotFound(f"{describe(lookup)} not found")
            new = change(_to_checkpoint(row))
            _update(conn, row[0], new)
            return new

        return await self._write(run)

    async def delete(self, lookup: Lookup, expected_etag: str) -> Checkpoint:
        def run(conn: sqlite3.Connection) -> Checkpoint:
            row = _find(conn, lookup)
            if row is None:
                raise NotFound(f"{describe(lookup)} not found")
            current = _to_checkpoint(row)
            check_etag(current, expected_etag)
            conn.execute("DELETE FROM checkpoints WHERE seq = ?", (row[0],))
            return current

        return await self._write(run)

    async def import_many(self, checkpoints: Sequence[Checkpoint]) -> int:
        def run(conn: sqlite3.Connection) -> int:
            written = 0
            for checkpoint in checkpoints:
                row = _find(conn, ById(checkpoint.id))
                if row is None:
                    _insert(conn, checkpoint)
                    written += 1
                    continue
                current = _to_checkpoint(row)
                if not same_content(current, checkpoint):
                    _update(conn, row[0], replace(checkpoint, version=current.version + 1))
                    written += 1
            return written

        return await self._write(run)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer_pool.submit(self._writer.close).result()
        self._writer_pool.shutdown(wait=True)
        self._reader.close()

    async def _write(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(
            self._writer_pool, self._in_transaction, work
        )

    def _in_transaction(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._writer is None:
            self._writer = self._connect()
        with _translated(), _transaction(self._writer):
            return work(self._writer)


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (domain errors included)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def _translated() -> Iterator[None]:
    """Turn sqlite3 errors into the service's errors; the SQL text never leaves this module."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        if "display_name" in str(exc):
            raise AlreadyExists("a checkpoint with this display name already exists") from exc
        if "checkpoints.id" in str(exc):
            raise AlreadyExists("a checkpoint with this id already exists") from exc
        raise InvalidArgument("the checkpoint breaks a rule of the store") from exc
    except sqlite3.Error as exc:
        raise Unavailable("the checkpoint store is unavailable") from exc


def _find(conn: sqlite3.Connection, lookup: Lookup) -> _Row | None:
    if isinstance(lookup, ById):
        row = conn.execute(f"{_SELECT} WHERE id = ?", (lookup.id,)).fetchone()
    else:
        row = conn.execute(f"{_SELECT} WHERE display_name = ?", (lookup.display_name,)).fetchone()
    return row  # type: ignore[no-any-return]


def _insert(conn: sqlite3.Connection, c: Checkpoint) -> None:
    conn.execute(
        "INSERT INTO checkpoints (id, display_name, limit_memory_mib, request_memory_mib,"
        " request_vcpus, state, create_time_us, update_time_us, version)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            c.id,
            c.display_name,
            *_resources(c.resources),
            c.state.value,
            _micros(c.create_time),
            _micros(c.update_time),
            c.version,
        ),
    )


def _update(conn: sqlite3.Connection, seq: int, c: Checkpoint) -> None:
    conn.execute(
        "UPDATE checkpoints SET display_name = ?, limit_memory_mib = ?, request_memory_mib = ?,"
        " request_vcpus = ?, state = ?, create_time_us = ?, update_time_us = ?, version = ?"
        " WHERE seq = ?",
        (
            c.display_name,
            *_resources(c.resources),
            c.state.value,
            _micros(c.create_time),
            _micros(c.update_time),
            c.version,
            seq,
        ),
    )


def _resources(r: Resources) -> tuple[int, int, int]:
    return (r.limit_memory_mib, r.request_memory_mib, r.request_vcpus)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(t: datetime) -> int:
    return (t - _EPOCH) // _MICROSECOND


def _from_micros(us: int) -> datetime:
    return _EPOCH + us * _MICROSECOND


def _to_checkpoint(row: _Row) -> Checkpoint:
    _, id_, name, lim, req, cpus, state, created, updated, version = row
    return Checkpoint(
        id=id_,
        display_name=name,
        resources=Resources(limit_memory_mib=lim, request_memory_mib=req, request_vcpus=cpus),
        state=State(state),
        create_time=_from_micros(created),
        update_time=_from_micros(updated),
        version=version,
    )
