"""Schema migrations of the PostgreSQL store, applied on start by whichever replica comes first."""

from __future__ import annotations

import psycopg
from psycopg.rows import TupleRow

from server.store._schema import POSTGRES_MIGRATIONS

_Conn = psycopg.AsyncConnection[TupleRow]
_MIGRATION_LOCK = int.from_bytes(b"ckptmeta", "big")


async def migrate(conn: _Conn) -> None:
    """Apply the migrations not applied yet, in one transaction under an advisory lock, so
    replicas starting together apply each version exactly once."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur = await conn.execute("SELECT version FROM schema_migrations")
        applied = {version for (version,) in await cur.fetchall()}
        for version, statements in POSTGRES_MIGRATIONS:
            if version in applied:
                continue
            for statement in statements:
                await conn.execute(statement)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
