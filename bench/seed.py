"""Stores of N checkpoints for the benchmark: SQLite files made once and cached, and the same
rows written into a PostgreSQL database for the store comparison.

A store is written through the service's own Store (server.store.open_store, import_many) in a
few large transactions, so it is exactly what the server would have written. The file is cached
under the results directory, keyed by the count, a bench seed version and a digest of the SQLite
migrations: a schema change makes a new file, and reruns start at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import sqlite3
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from server.domain import ById, ByName, Checkpoint, Resources, State
from server.store import open_store
from server.store._schema import SQLITE_MIGRATIONS
from server.tokens import READ_SCOPE, create_token

SEED_VERSION = 1
"""Bump when the generated rows change, so cached stores are rebuilt."""
BATCH = 100_000
STATES = (State.READY, State.READY, State.READY, State.CREATING, State.FAILED, State.DELETING)


@dataclass(frozen=True)
class SeededStore:
    path: Path
    count: int
    sample_id: str
    """The id of the checkpoint in the middle of the store, the one the load asks for."""
    sample_name: str
    seconds_to_build: float
    """0 when the cached file was reused."""

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"


def schema_key() -> str:
    """A digest of the SQLite migrations and the seed version: the cache key of a store."""
    text = json.dumps([SEED_VERSION, SQLITE_MIGRATIONS])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def name_of(index: int) -> str:
    return f"bench-{index:07d}"


def _checkpoints(start: int, stop: int, rng: random.Random) -> list[Checkpoint]:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    out: list[Checkpoint] = []
    for index in range(start, stop):
        request = 256 << (index % 6)
        when = base + timedelta(seconds=index)
        out.append(
            Checkpoint(
                id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                display_name=name_of(index),
                resources=Resources(
                    limit_memory_mib=request * 2,
                    request_memory_mib=request,
                    request_vcpus=1 + index % 8,
                ),
                state=STATES[index % len(STATES)],
                create_time=when,
                update_time=when,
                version=1,
            )
        )
    return out


async def _build(url: str, count: int) -> None:
    store = open_store(url)
    try:
        rng = random.Random(count)  # noqa: S311 (test data, not secrets)
        for start in range(0, count, BATCH):
            await store.import_many(_checkpoints(start, min(count, start + BATCH), rng))
    finally:
        await store.close()


async def _sample(url: str, count: int) -> tuple[str, str]:
    store = open_store(url)
    try:
        found = await store.get(ByName(name_of(count // 2)))
        assert (await store.get(ById(found.id))).display_name == found.display_name
        return found.id, found.display_name
    finally:
        await store.close()


def seeded_store(cache_dir: Path, count: int) -> SeededStore:
    """The cached store of count checkpoints, built first when missing (tens of seconds for 10^6).

    Raises:
        CheckpointError: the store cannot be written or read.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"checkpoints-{count}-{schema_key()}.db"
    took = 0.0
    if not path.exists():
        partial = path.with_suffix(".partial")
        for leftover in cache_dir.glob(f"{partial.name}*"):
            leftover.unlink()
        print(f"bench: writing {count} checkpoints to {path.name} (cached)", file=sys.stderr)
        started = time.monotonic()
        asyncio.run(_build(f"sqlite:///{partial}", count))
        # Fold the WAL into the file and leave WAL mode, so the one file is the whole store
        # (the server turns WAL back on when it opens it).
        with contextlib.closing(sqlite3.connect(partial)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA journal_mode = DELETE")
        partial.rename(path)
        took = time.monotonic() - started
    sample_id, sample_name = asyncio.run(_sample(f"sqlite:///{path}", count))
    return SeededStore(path, count, sample_id, sample_name, took)


def ab_setup(work: Path) -> tuple[SeededStore, Path, str]:
    """What every A/B tool starts from: work made, the cached store of 10^3, and a fresh tokens
    file in work with one read token (returned with the file's path)."""
    work.mkdir(parents=True, exist_ok=True)
    store = seeded_store(Path(__file__).parent / "results" / "cache", 10**3)
    tokens = work / "tokens.json"
    tokens.unlink(missing_ok=True)
    return store, tokens, create_token(tokens, "bench", [READ_SCOPE])


def seed_postgres(url: str, count: int) -> str:
    """Write the same count checkpoints into a PostgreSQL database (idempotent by id); the id
    the load asks for.

    Raises:
        CheckpointError: the database cannot be written or read.
    """
    asyncio.run(_build(url, count))
    return asyncio.run(_sample(url, count))[0]
