"""The PostgreSQL SQL of the idempotency keys (`_core.Transaction`'s *_request primitives).

A write's lookup locks the key's row (SELECT ... FOR UPDATE), so two replicas retrying one key
take turns; an insert racing another replica's waits for its commit and then does nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from psycopg.rows import TupleRow

from server.store._core import KeyRecord, RequestKey

_Conn = psycopg.AsyncConnection[TupleRow]
_SELECT = "SELECT fingerprint, result, claimed, expires FROM request_keys"


class RequestRows:
    """The request_keys primitives on one connection (the base of the store's row SQL)."""

    def __init__(self, conn: _Conn, *, lock: bool = True) -> None:
        self._conn = conn
        self._suffix = " FOR UPDATE" if lock else ""

    async def find_request(self, scope: str, request_id: str) -> KeyRecord | None:
        cur = await self._conn.execute(
            f"{_SELECT} WHERE scope = %s AND request_id = %s{self._suffix}",
            (scope, request_id),
        )
        row = await cur.fetchone()
        if row is None:
            return None
        fingerprint, result, claimed, expires = row
        return KeyRecord(
            bytes(fingerprint),
            None if result is None else bytes(result),
            claimed.astimezone(UTC),
            expires.astimezone(UTC),
        )

    async def insert_request(self, key: RequestKey, record: KeyRecord) -> bool:
        # A replica inserting the same key at the same moment makes this wait for its commit
        # and then do nothing: the caller looks again and sees that replica's claim.
        cur = await self._conn.execute(
            "INSERT INTO request_keys (scope, request_id, fingerprint, result, claimed, expires)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (key.scope, key.request_id, *_key_columns(record)),
        )
        return cur.rowcount == 1

    async def replace_request(self, key: RequestKey, record: KeyRecord) -> None:
        await self._conn.execute(
            "UPDATE request_keys SET fingerprint = %s, result = %s, claimed = %s, expires = %s"
            " WHERE scope = %s AND request_id = %s",
            (*_key_columns(record), key.scope, key.request_id),
        )

    async def complete_request(self, key: RequestKey, result: bytes) -> None:
        await self._conn.execute(
            "UPDATE request_keys SET result = %s WHERE scope = %s AND request_id = %s",
            (result, key.scope, key.request_id),
        )

    async def drop_request(self, key: RequestKey) -> None:
        await self._conn.execute(
            "DELETE FROM request_keys WHERE scope = %s AND request_id = %s"
            " AND fingerprint = %s AND result IS NULL",
            (key.scope, key.request_id, key.fingerprint),
        )

    async def purge_requests(self, now: datetime) -> int:
        cur = await self._conn.execute("DELETE FROM request_keys WHERE expires <= %s", (now,))
        return cur.rowcount


def _key_columns(record: KeyRecord) -> tuple[bytes, bytes | None, datetime, datetime]:
    return (record.fingerprint, record.result, record.claimed, record.expires)
