"""The schema, as ordered migrations; each runs once, in one transaction, recorded by version."""

from __future__ import annotations

# Version -> DDL statements. Append, never edit: a store records the versions it has applied.
# The CHECK and UNIQUE constraints repeat the contract's rules so that no writer, however racy,
# can store what the service would refuse (api-contract.md, "The resource").
SQLITE_MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """
            CREATE TABLE checkpoints (
                seq                INTEGER PRIMARY KEY AUTOINCREMENT,
                id                 TEXT    NOT NULL UNIQUE,
                display_name       TEXT    NOT NULL UNIQUE,
                limit_memory_mib   INTEGER NOT NULL,
                request_memory_mib INTEGER NOT NULL CHECK (request_memory_mib >= 1),
                request_vcpus      INTEGER NOT NULL CHECK (request_vcpus >= 1),
                state              TEXT    NOT NULL
                                   CHECK (state IN ('creating', 'ready', 'failed', 'deleting')),
                create_time_us     INTEGER NOT NULL,
                update_time_us     INTEGER NOT NULL,
                version            INTEGER NOT NULL,
                CHECK (limit_memory_mib >= request_memory_mib)
            )
            """,
            "CREATE INDEX checkpoints_state_seq ON checkpoints (state, seq)",
            "CREATE TABLE store_secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
        ],
    ),
]
