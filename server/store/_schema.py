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
    (
        2,
        [
            # Idempotency keys of creates (AIP-155 request_id), per token name. result is the
            # serialized answer to replay, NULL while the first call runs; times in microseconds.
            """
            CREATE TABLE request_keys (
                scope       TEXT    NOT NULL,
                request_id  TEXT    NOT NULL,
                fingerprint BLOB    NOT NULL,
                result      BLOB,
                claimed_us  INTEGER NOT NULL,
                expires_us  INTEGER NOT NULL,
                PRIMARY KEY (scope, request_id)
            )
            """,
            "CREATE INDEX request_keys_expires ON request_keys (expires_us)",
        ],
    ),
    (
        3,
        [
            # The change history (server.store._changes): one row per committed change, with the
            # checkpoint after it (for a delete, its last state). AUTOINCREMENT: a seq is never
            # reused, even after the purge empties the table's low end.
            """
            CREATE TABLE checkpoint_changes (
                seq                INTEGER PRIMARY KEY AUTOINCREMENT,
                kind               TEXT    NOT NULL
                                   CHECK (kind IN ('created', 'updated', 'deleted')),
                id                 TEXT    NOT NULL,
                display_name       TEXT    NOT NULL,
                limit_memory_mib   INTEGER NOT NULL,
                request_memory_mib INTEGER NOT NULL,
                request_vcpus      INTEGER NOT NULL,
                state              TEXT    NOT NULL,
                create_time_us     INTEGER NOT NULL,
                update_time_us     INTEGER NOT NULL,
                version            INTEGER NOT NULL
            )
            """,
        ],
    ),
]

# The same schema for PostgreSQL: identity seq for keyset paging, uuid ids, timestamptz times
# (microseconds, like Python's datetime). Constraint names are what the store's error translation
# reads (a unique violation on checkpoints_display_name_key is AlreadyExists).
POSTGRES_MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """
            CREATE TABLE checkpoints (
                seq                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id                 uuid        NOT NULL,
                display_name       text        NOT NULL,
                limit_memory_mib   bigint      NOT NULL,
                request_memory_mib bigint      NOT NULL,
                request_vcpus      bigint      NOT NULL,
                state              text        NOT NULL,
                create_time        timestamptz NOT NULL,
                update_time        timestamptz NOT NULL,
                version            bigint      NOT NULL,
                CONSTRAINT checkpoints_id_key UNIQUE (id),
                CONSTRAINT checkpoints_display_name_key UNIQUE (display_name),
                CONSTRAINT checkpoints_request_memory_mib_check CHECK (request_memory_mib >= 1),
                CONSTRAINT checkpoints_request_vcpus_check CHECK (request_vcpus >= 1),
                CONSTRAINT checkpoints_limit_memory_mib_check
                    CHECK (limit_memory_mib >= request_memory_mib),
                CONSTRAINT checkpoints_state_check
                    CHECK (state IN ('creating', 'ready', 'failed', 'deleting'))
            )
            """,
            "CREATE INDEX checkpoints_state_seq ON checkpoints (state, seq)",
            "CREATE TABLE store_secrets (name text PRIMARY KEY, value bytea NOT NULL)",
        ],
    ),
    (
        2,
        [
            """
            CREATE TABLE request_keys (
                scope       text        NOT NULL,
                request_id  text        NOT NULL,
                fingerprint bytea       NOT NULL,
                result      bytea,
                claimed     timestamptz NOT NULL,
                expires     timestamptz NOT NULL,
                CONSTRAINT request_keys_pkey PRIMARY KEY (scope, request_id)
            )
            """,
            "CREATE INDEX request_keys_expires ON request_keys (expires)",
        ],
    ),
    (
        3,
        [
            """
            CREATE TABLE checkpoint_changes (
                seq                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                kind               text        NOT NULL,
                id                 uuid        NOT NULL,
                display_name       text        NOT NULL,
                limit_memory_mib   bigint      NOT NULL,
                request_memory_mib bigint      NOT NULL,
                request_vcpus      bigint      NOT NULL,
                state              text        NOT NULL,
                create_time        timestamptz NOT NULL,
                update_time        timestamptz NOT NULL,
                version            bigint      NOT NULL,
                CONSTRAINT checkpoint_changes_kind_check
                    CHECK (kind IN ('created', 'updated', 'deleted'))
            )
            """,
        ],
    ),
]
