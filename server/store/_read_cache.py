"""Checkpoints read by the SQLite store, kept while the database file is unchanged.

A point read costs a SELECT (a read transaction: a lock, an fstat and an unlock on the file) and
the row's decoding; `PRAGMA data_version` costs the transaction alone. It changes whenever any
other connection, of this process (the writer thread) or of another (--workers, a second
replica, an import) committed since the previous look, and never for a rollback. The reader
connection that asks never writes once the store is open, so every commit changes it.

Why an answer from here is what a SELECT would answer at that instant: an entry is stored under
the version read before its SELECT, so it holds data at least that new; it is used only while
the version still reads the same, that is while no commit happened since before its SELECT, so
the data it holds is the current data. Every step runs on the event loop's thread without
suspending, so no other read interleaves between the version check and the entry it guards.
"""

from __future__ import annotations

import sqlite3

from server.domain import Checkpoint, Lookup

CACHE_LIMIT = 4096
"""Entries kept at most; a full cache starts over (bounded memory, whatever clients ask for)."""


class ReadCache:
    """Lookups that found a checkpoint, valid for one data_version of one connection."""

    __slots__ = ("_cursor", "_found", "_limit", "_version")

    def __init__(self, conn: sqlite3.Connection, limit: int = CACHE_LIMIT) -> None:
        # One cursor for every look (Connection.execute makes and drops one per call).
        self._cursor, self._limit = conn.cursor(), limit
        self._version: int | None = None
        self._found: dict[Lookup, Checkpoint] = {}

    def current(self) -> dict[Lookup, Checkpoint]:
        """The entries valid now: emptied first when the database changed since the last look.

        Raises:
            sqlite3.Error: the database cannot be read.
        """
        (version,) = self._cursor.execute("PRAGMA data_version").fetchone()
        if version != self._version:
            self._found = {}
            self._version = version
        return self._found

    def keep(self, entries: dict[Lookup, Checkpoint], lookup: Lookup, found: Checkpoint) -> None:
        """Remember what a SELECT found for lookup, in the entries `current` returned before it
        (entries of an older version are dropped at the next look, never used)."""
        if len(entries) >= self._limit:
            entries.clear()
        entries[lookup] = found
