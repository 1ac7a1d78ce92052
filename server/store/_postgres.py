"""The PostgreSQL store: psycopg 3 (async) over a fixed-size connection pool, for shared replicas.

Behaves as the SQLite store does (same errors, same rules), with PostgreSQL doing the
serialising: every write is one transaction; an update or delete first locks its row with
SELECT ... FOR UPDATE, so two replicas changing one checkpoint take turns. Connections run in
autocommit mode, so a point read is one round trip and a write is an explicit BEGIN ... COMMIT.
Commits are synchronous (the server's default): an acknowledged write is on disk. The
algorithms are `_core`'s; this module supplies their SQL (`_Rows`), the pool and error translation.

Migrations run on open, inside one transaction that holds a transaction-scoped advisory lock, so
replicas starting together apply each version exactly once and the others wait for it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from server.domain import ById, Checkpoint, Lookup, Resources, State
from server.errors import Aborted, AlreadyExists, InvalidArgument, Unavailable
from server.store import _core, _pg_changes
from server.store._changes import Changes, Pending, Snapshot
from server.store._core import Change, Completion, Found, RequestKey, resource_columns
from server.store._pg_migrate import migrate
from server.store._postgres_requests import RequestRows

_T = TypeVar("_T")
_Conn = psycopg.AsyncConnection[TupleRow]

DEFAULT_POOL_SIZE = 10
# Seconds: to make one connection, and to wait for a free pooled one (or for the pool to fill).
_CONNECT_TIMEOUT = 5
_POOL_TIMEOUT = 10.0
# The pg_advisory_xact_lock key that serialises migrations: the bytes of "ckptmeta".

_COLUMNS = (
    "seq, id, display_name, limit_memory_mib, request_memory_mib, request_vcpus, state, "
    "create_time, update_time, version"
)
_SELECT = f"SELECT {_COLUMNS} FROM checkpoints"  # noqa: S608 (constant column list)
_INSERT = (
    "INSERT INTO checkpoints (id, display_name, limit_memory_mib, request_memory_mib,"
    " request_vcpus, state, create_time, update_time, version)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_Row = tuple[Any, ...]


def postgres_conninfo(url: str) -> str:
    """The libpq URL for a postgresql:// or postgres:// URL (the scheme normalised).

    Raises:
        InvalidArgument: libpq cannot parse the URL.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("postgresql", "postgres"):
        raise InvalidArgument("invalid PostgreSQL URL: use postgresql://USER@HOST:PORT/DATABASE")
    conninfo = f"postgresql://{rest}"
    try:
        conninfo_to_dict(conninfo)
    except psycopg.Error as exc:
        # The driver's message may quote the URL, password included: it is not repeated.
        raise InvalidArgument(
            "invalid PostgreSQL URL: use postgresql://USER@HOST:PORT/DATABASE[?PARAM=VALUE]"
        ) from exc
    return conninfo


class PostgresStore:
    def __init__(self, conninfo: str, kwargs: dict[str, Any], pool_size: int) -> None:
        self._conninfo, self._kwargs = conninfo, kwargs
        self._pool: AsyncConnectionPool[_Conn] = AsyncConnectionPool(
            conninfo,
            kwargs=kwargs,
            min_size=pool_size,
            max_size=pool_size,
            open=False,
            timeout=_POOL_TIMEOUT,
            name="checkpoint-store",
        )
        self._started = False
        self._closed = False
        self._starting = asyncio.Lock()
        self._listener = _pg_changes.Listener(conninfo, kwargs)

    @classmethod
    def open(cls, url: str, pool_size: int = DEFAULT_POOL_SIZE) -> PostgresStore:
        """A store for the database a postgresql:// URL names, with pool_size connections.

        Nothing is connected yet (the pool is asynchronous): `start`, which the first call runs,
        connects, applies migrations and fills the pool.

        Raises:
            InvalidArgument: the URL or the pool size is invalid.
        """
        if pool_size < 1:
            raise InvalidArgument(f"the database pool size must be at least 1 (got {pool_size})")
        conninfo = postgres_conninfo(url)
        kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in conninfo_to_dict(conninfo):
            kwargs["connect_timeout"] = _CONNECT_TIMEOUT
        return cls(conninfo, kwargs, pool_size)

    async def start(self) -> None:
        """Connect, apply migrations and fill the pool, once; a failed start is tried again.

        Raises:
            Unavailable: the server cannot be reached or refuses the connection.
        """
        if self._started:
            return
        async with self._starting:
            if self._started:
                return
            if self._closed:
                raise Unavailable("the checkpoint store is closed")
            # One plain connection first: an unreachable server fails at once (not after the
            # pool's retries), and migrations finish before any pooled connection serves a call.
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, **self._kwargs)
            except psycopg.Error as exc:
                raise Unavailable(f"cannot connect to the PostgreSQL database: {exc}") from exc
            try:
                with _translated():
                    await migrate(conn)
            finally:
                await conn.close()
            try:
                await self._pool.open(wait=True, timeout=_POOL_TIMEOUT)
            except psycopg.Error as exc:
                raise Unavailable(f"cannot fill the PostgreSQL connection pool: {exc}") from exc
            self._started = True

    # -- reads: one statement each, retried once on a connection that turns out to be dead -----

    async def get(self, lookup: Lookup) -> Checkpoint:
        return await self._read(lambda conn: _core.get(_Rows(conn, lock=False), lookup))

    async def list(
        self, *, state: State | None, after: int, limit: int
    ) -> list[tuple[int, Checkpoint]]:
        async def run(conn: _Conn) -> list[_Row]:
            if state is None:
                cur = await conn.execute(
                    f"{_SELECT} WHERE seq > %s ORDER BY seq LIMIT %s", (after, limit)
                )
            else:
                cur = await conn.execute(
                    f"{_SELECT} WHERE state = %s AND seq > %s ORDER BY seq LIMIT %s",
                    (state.value, after, limit),
                )
            return await cur.fetchall()

        rows = await self._read(run)
        return [(row[0], _to_checkpoint(row)) for row in rows]

    async def ping(self) -> None:
        async def run(conn: _Conn) -> None:
            await conn.execute("SELECT 1")

        await self._read(run)

    async def snapshot(self, state: State | None, checkpoint_id: str | None) -> Snapshot:
        id_ = None if checkpoint_id is None else _stored_id(checkpoint_id)
        return await self._read(
            lambda c: _pg_changes.snapshot(c, _SELECT, _to_checkpoint, state, id_)
        )

    async def changes_after(self, after: int, limit: int) -> Changes:
        return await self._read(
            lambda c: _pg_changes.changes_after(c, _to_checkpoint, after, limit)
        )

    async def wait_for_change(self) -> None:
        await self._listener.wait()

    # -- writes: one transaction each ---------------------------------------------------------

    async def secret(self, name: str) -> bytes:
        async def make(conn: _Conn) -> bytes:
            await conn.execute(
                "INSERT INTO store_secrets (name, value) VALUES (%s, %s)"
                " ON CONFLICT (name) DO NOTHING",
                (name, secrets.token_bytes(32)),
            )
            cur = await conn.execute("SELECT value FROM store_secrets WHERE name = %s", (name,))
            row = await cur.fetchone()
            if row is None:  # inserted above, or by a replica that got there first: never gone
                raise Unavailable("the checkpoint store lost a key it had just written")
            return bytes(row[0])

        return await self._write(make)

    async def create(
        self, checkpoint: Checkpoint, completes: Completion | None = None
    ) -> Checkpoint:
        return await self._write(lambda conn: _core.create(_Rows(conn), checkpoint, completes))

    async def claim_request(
        self, key: RequestKey, now: datetime, *, ttl: timedelta, lease: timedelta
    ) -> bytes | None:
        return await self._write(
            lambda conn: _core.claim_request(_Rows(conn), key, now, ttl=ttl, lease=lease)
        )

    async def release_request(self, key: RequestKey) -> None:
        await self._write(lambda conn: _Rows(conn).drop_request(key))

    async def purge_requests(self, now: datetime) -> int:
        return await self._write(lambda conn: _Rows(conn).purge_requests(now))

    async def update(self, lookup: Lookup, change: Change) -> Checkpoint:
        return await self._write(lambda conn: _core.update(_Rows(conn), lookup, change))

    async def delete(self, lookup: Lookup, expected_etag: str) -> Checkpoint:
        return await self._write(lambda conn: _core.delete(_Rows(conn), lookup, expected_etag))

    async def import_many(self, checkpoints: Sequence[Checkpoint]) -> int:
        return await self._write(lambda conn: _core.import_many(_Rows(conn), checkpoints))

    async def close(self) -> None:
        async with self._starting:
            self._closed = True
            await self._listener.close()
            await self._pool.close()

    async def _read(self, work: Callable[[_Conn], Awaitable[_T]]) -> _T:
        """Run one read; a connection found dead (a server restart, an idle kill) is retried."""
        await self.start()
        retried = False
        while True:  # at most twice: every path but one retry returns or raises
            conn: _Conn | None = None
            try:
                async with self._pool.connection() as conn:
                    return await work(conn)
            except psycopg.OperationalError as exc:
                died = conn is not None and conn.closed and not isinstance(exc, PoolTimeout)
                if died and not retried:
                    retried = True
                    continue
                raise _translate(exc) from exc
            except psycopg.Error as exc:
                raise _translate(exc) from exc

    async def _write(self, work: Callable[[_Conn], Awaitable[_T]]) -> _T:
        """Run work in one transaction: COMMIT, or ROLLBACK on any exception (domain errors too)."""
        await self.start()
        try:
            with _translated():
                async with self._pool.connection() as conn, conn.transaction():
                    return await work(conn)
        finally:
            self._listener.poke()


@contextmanager
def _translated() -> Iterator[None]:
    """Turn psycopg errors into the service's errors; the SQL text never leaves this module."""
    try:
        yield
    except psycopg.Error as exc:
        raise _translate(exc) from exc


def _translate(exc: psycopg.Error) -> Exception:
    if isinstance(exc, psycopg.errors.UniqueViolation):
        if exc.diag.constraint_name == "checkpoints_display_name_key":
            return AlreadyExists("a checkpoint with this display name already exists")
        if exc.diag.constraint_name == "checkpoints_id_key":
            return AlreadyExists("a checkpoint with this id already exists")
    if isinstance(exc, psycopg.IntegrityError | psycopg.DataError):
        return InvalidArgument("the checkpoint breaks a rule of the store")
    if exc.sqlstate is not None and exc.sqlstate.startswith("40"):
        # Serialization failure or deadlock: the transaction was rolled back whole.
        return Aborted("the write conflicted with a concurrent one and changed nothing; retry")
    return Unavailable("the checkpoint store is unavailable")


class _Rows(RequestRows):
    """The SQL of `_core.Transaction` on one connection; a write's reads lock their row.

    SELECT ... FOR UPDATE makes two replicas changing one checkpoint take turns, so the row an
    algorithm read is the row it writes.
    """

    def __init__(self, conn: _Conn, *, lock: bool = True) -> None:
        super().__init__(conn, lock=lock)

    async def find(self, lookup: Lookup) -> Found | None:
        if isinstance(lookup, ById):
            id_ = _canonical_uuid(lookup.id)
            if id_ is None:
                return None  # no stored id has another form (the column is a uuid)
            cur = await self._conn.execute(f"{_SELECT} WHERE id = %s{self._suffix}", (id_,))
        else:
            cur = await self._conn.execute(
                f"{_SELECT} WHERE display_name = %s{self._suffix}", (lookup.display_name,)
            )
        row = await cur.fetchone()
        return None if row is None else (row[0], _to_checkpoint(row))

    async def insert(self, c: Checkpoint, *, skip_existing_id: bool = False) -> bool:
        cur = await self._conn.execute(
            _INSERT + " ON CONFLICT (id) DO NOTHING" if skip_existing_id else _INSERT, _params(c)
        )
        return cur.rowcount == 1

    async def replace(self, seq: int, c: Checkpoint) -> None:
        await self._conn.execute(
            "UPDATE checkpoints SET display_name = %s, limit_memory_mib = %s,"
            " request_memory_mib = %s, request_vcpus = %s, state = %s, create_time = %s,"
            " update_time = %s, version = %s WHERE seq = %s",
            (
                c.display_name,
                *resource_columns(c.resources),
                c.state.value,
                _aware(c.create_time),
                _aware(c.update_time),
                c.version,
                seq,
            ),
        )

    async def remove(self, seq: int) -> None:
        await self._conn.execute("DELETE FROM checkpoints WHERE seq = %s", (seq,))

    async def record(self, changes: Sequence[Pending]) -> None:
        await _pg_changes.record(self._conn, [(kind.value, *_params(c)) for kind, c in changes])


def _params(c: Checkpoint) -> tuple[Any, ...]:
    """A checkpoint's columns in _INSERT's order (the change history's, after its kind)."""
    return (
        _stored_id(c.id),
        c.display_name,
        *resource_columns(c.resources),
        c.state.value,
        _aware(c.create_time),
        _aware(c.update_time),
        c.version,
    )


def _canonical_uuid(value: str) -> UUID | None:
    """The UUID value is the canonical lowercase text of, or None."""
    try:
        parsed = UUID(value)
    except ValueError:
        return None
    return parsed if str(parsed) == value else None


def _stored_id(value: str) -> UUID:
    """The id to store; only the canonical form is one (api-contract.md, "The resource").

    Raises:
        InvalidArgument: value is not a canonical lowercase UUID.
    """
    parsed = _canonical_uuid(value)
    if parsed is None:
        raise InvalidArgument("the checkpoint breaks a rule of the store: id is not a UUID")
    return parsed


def _aware(t: datetime) -> datetime:
    """t itself; a naive datetime is refused (as SQLite's arithmetic refuses it), never guessed."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise TypeError("checkpoint times must be timezone-aware datetimes")
    return t


def _to_checkpoint(row: _Row) -> Checkpoint:
    _, id_, name, lim, req, cpus, state, created, updated, version = row
    return Checkpoint(
        id=str(id_),
        display_name=name,
        resources=Resources(limit_memory_mib=lim, request_memory_mib=req, request_vcpus=cpus),
        state=State(state),
        create_time=created.astimezone(UTC),
        update_time=updated.astimezone(UTC),
        version=version,
    )
