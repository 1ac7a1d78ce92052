"""The request_keys primitives of the SQLite store (idempotency keys, server/idempotency.py).

The base of the store's row SQL (server/store/_sqlite._Rows), kept apart so each module stays
one concern: a call never suspends, as all of the SQLite store's row SQL.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from server.store._core import KeyRecord, RequestKey


class RequestRows:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def find_request(self, scope: str, request_id: str) -> KeyRecord | None:
        row = self._conn.execute(
            "SELECT fingerprint, result, claimed_us, expires_us FROM request_keys"
            " WHERE scope = ? AND request_id = ?",
            (scope, request_id),
        ).fetchone()
        if row is None:
            return None
        fingerprint, result, claimed, expires = row
        return KeyRecord(
            bytes(fingerprint),
            None if result is None else bytes(result),
            from_micros(claimed),
            from_micros(expires),
        )

    async def insert_request(self, key: RequestKey, record: KeyRecord) -> bool:
        cur = self._conn.execute(
            "INSERT INTO request_keys (scope, request_id, fingerprint, result, claimed_us,"
            " expires_us) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (key.scope, key.request_id, *_key_columns(record)),
        )
        return cur.rowcount == 1

    async def replace_request(self, key: RequestKey, record: KeyRecord) -> None:
        self._conn.execute(
            "UPDATE request_keys SET fingerprint = ?, result = ?, claimed_us = ?,"
            " expires_us = ? WHERE scope = ? AND request_id = ?",
            (*_key_columns(record), key.scope, key.request_id),
        )

    async def complete_request(self, key: RequestKey, result: bytes) -> None:
        self._conn.execute(
            "UPDATE request_keys SET result = ? WHERE scope = ? AND request_id = ?",
            (result, key.scope, key.request_id),
        )

    async def drop_request(self, key: RequestKey) -> None:
        self._conn.execute(
            "DELETE FROM request_keys WHERE scope = ? AND request_id = ? AND fingerprint = ?"
            " AND result IS NULL",
            (key.scope, key.request_id, key.fingerprint),
        )

    async def purge_requests(self, now: datetime) -> int:
        cur = self._conn.execute("DELETE FROM request_keys WHERE expires_us <= ?", (micros(now),))
        return cur.rowcount


def _key_columns(record: KeyRecord) -> tuple[bytes, bytes | None, int, int]:
    return (record.fingerprint, record.result, micros(record.claimed), micros(record.expires))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def micros(t: datetime) -> int:
    return (t - _EPOCH) // _MICROSECOND


def from_micros(us: int) -> datetime:
    return _EPOCH + us * _MICROSECOND
