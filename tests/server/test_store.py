"""The Store contract, run against every backend (SQLite and PostgreSQL) by one parametrised suite.

The PostgreSQL cases get a fresh database on a throwaway server (tests/pg.py); a few tests at the
end cover what only PostgreSQL has: a lost connection, racing migrations, URL spellings.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from server.domain import ById, ByName, Checkpoint, Patch, Resources, State, apply_patch
from server.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from server.store import Change, Store, open_store
from server.store._postgres import PostgresStore
from server.store._schema import POSTGRES_MIGRATIONS

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def make(
    name: str,
    *,
    state: State = State.CREATING,
    at: datetime = T0,
    memory: tuple[int, int] = (2048, 1024),
    vcpus: int = 2,
) -> Checkpoint:
    """A valid checkpoint (unless the arguments say otherwise) with a new id."""
    return Checkpoint(
        id=str(uuid.uuid4()),
        display_name=name,
        resources=Resources(
            limit_memory_mib=memory[0], request_memory_mib=memory[1], request_vcpus=vcpus
        ),
        state=state,
        create_time=at,
        update_time=at,
        version=1,
    )


def patching(patch: Patch) -> Change:
    """The change function the servicer makes for an update request."""
    return lambda current: apply_patch(current, patch, T0)


async def everything(store: Store) -> list[Checkpoint]:
    """Every stored checkpoint, in creation order."""
    return [c for _, c in await store.list(state=None, after=0, limit=1000)]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    url: str = request.getfixturevalue("postgres_database_url")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An open, empty store, closed after the test."""
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        await opened.close()


# -- get ------------------------------------------------------------------------------------


async def test_get_by_id_and_by_name(store: Store) -> None:
    """A created checkpoint is found, equal, by its id and by its display name."""
    created = await store.create(make("alpha"))
    await store.create(make("beta"))
    assert await store.get(ById(created.id)) == created
    assert await store.get(ByName("alpha")) == created


async def test_get_missing_is_not_found_with_the_lookup_in_the_message(store: Store) -> None:
    """A lookup that matches nothing raises NotFound naming what was looked up."""
    missing = str(uuid.uuid4())
    with pytest.raises(NotFound) as by_id:
        await store.get(ById(missing))
    assert by_id.value.message == f'checkpoint "{missing}" not found'
    with pytest.raises(NotFound) as by_name:
        await store.get(ByName("nobody"))
    assert by_name.value.message == 'checkpoint "nobody" not found'


# -- create ---------------------------------------------------------------------------------


async def test_create_duplicate_name_is_already_exists_and_writes_nothing(store: Store) -> None:
    """A second checkpoint with a taken display name is refused and leaves the store as it was."""
    first = await store.create(make("taken"))
    with pytest.raises(AlreadyExists) as raised:
        await store.create(make("taken", vcpus=8))
    assert "display name" in raised.value.message
    assert await everything(store) == [first]


async def test_create_duplicate_id_is_already_exists(store: Store) -> None:
    """A second checkpoint with a taken id is refused whatever its name."""
    first = await store.create(make("one"))
    with pytest.raises(AlreadyExists):
        await store.create(replace(make("two"), id=first.id))
    assert await everything(store) == [first]


async def test_concurrent_creates_of_one_name_let_exactly_one_win(store: Store) -> None:
    """Ten creates of one display name at once: one is stored, nine are AlreadyExists."""
    attempts = [make("contended", vcpus=n + 1) for n in range(10)]
    results = await asyncio.gather(*(store.create(c) for c in attempts), return_exceptions=True)
    winners = [r for r in results if isinstance(r, Checkpoint)]
    losers = [r for r in results if isinstance(r, AlreadyExists)]
    assert (len(winners), len(losers)) == (1, 9)
    assert await everything(store) == winners


@pytest.mark.parametrize(
    ("memory", "vcpus"),
    [((512, 1024), 1), ((1024, 0), 1), ((1024, 1024), 0)],
    ids=["limit-below-request", "zero-memory", "zero-vcpus"],
)
async def test_create_breaking_a_resource_rule_is_refused_by_the_schema(
    store: Store, memory: tuple[int, int], vcpus: int
) -> None:
    """The store's own constraints refuse resources the contract forbids, and store nothing."""
    with pytest.raises(InvalidArgument) as raised:
        await store.create(make("bad", memory=memory, vcpus=vcpus))
    assert "INSERT" not in raised.value.message
    assert await everything(store) == []


# -- update ---------------------------------------------------------------------------------


async def test_update_stores_what_the_change_function_returns(store: Store) -> None:
    """apply_patch as the change: the new name, state and version are stored and returned."""
    created = await store.create(make("before"))
    later = T0 + timedelta(minutes=5)
    patch = Patch(display_name="after", state=State.READY, expected_etag=created.etag)
    updated = await store.update(ByName("before"), lambda c: apply_patch(c, patch, later))
    assert (updated.display_name, updated.state, updated.version) == ("after", State.READY, 2)
    assert updated.update_time == later
    assert await store.get(ById(created.id)) == updated
    with pytest.raises(NotFound):
        await store.get(ByName("before"))


async def test_refused_changes_leave_no_trace(store: Store) -> None:
    """A change that raises (bad move, stale etag, taken name) changes nothing at all."""
    other = await store.create(make("other"))
    target = await store.create(make("target"))
    refusals: list[tuple[Patch, type[Exception]]] = [
        (Patch(state=State.DELETING), FailedPrecondition),
        (Patch(request_vcpus=4, expected_etag="v7"), Aborted),
        (Patch(limit_memory_mib=1), InvalidArgument),
        (Patch(display_name="other"), AlreadyExists),
    ]
    for patch, error in refusals:
        with pytest.raises(error):
            await store.update(ById(target.id), patching(patch))
    assert await everything(store) == [other, target]


async def test_update_missing_is_not_found_without_calling_the_change(store: Store) -> None:
    """Updating nothing raises NotFound and never runs the change function."""
    calls: list[Checkpoint] = []

    def change(c: Checkpoint) -> Checkpoint:
        calls.append(c)
        return c

    with pytest.raises(NotFound) as raised:
        await store.update(ByName("ghost"), change)
    assert raised.value.message == 'checkpoint "ghost" not found'
    assert calls == []


async def test_concurrent_updates_are_serialised(store: Store) -> None:
    """Ten read-modify-write changes of one checkpoint at once lose none of the increments."""
    created = await store.create(make("counter", vcpus=1))

    def bump(c: Checkpoint) -> Checkpoint:
        r = c.resources
        return replace(
            c, resources=replace(r, request_vcpus=r.request_vcpus + 1), version=c.version + 1
        )

    await asyncio.gather(*(store.update(ById(created.id), bump) for _ in range(10)))
    final = await store.get(ById(created.id))
    assert (final.resources.request_vcpus, final.version) == (11, 11)


# -- delete ---------------------------------------------------------------------------------


async def test_delete_checks_the_etag(store: Store) -> None:
    """A stale etag is Aborted and keeps the checkpoint; the current one deletes and returns it."""
    created = await store.create(make("doomed"))
    with pytest.raises(Aborted):
        await store.delete(ByName("doomed"), "v2")
    assert await store.get(ById(created.id)) == created
    assert await store.delete(ByName("doomed"), created.etag) == created
    with pytest.raises(NotFound) as raised:
        await store.get(ById(created.id))
    assert raised.value.message == f'checkpoint "{created.id}" not found'


async def test_delete_without_etag_and_of_missing(store: Store) -> None:
    """An empty etag deletes unconditionally; deleting a missing checkpoint is NotFound."""
    created = await store.create(make("gone"))
    assert await store.delete(ById(created.id), "") == created
    assert await everything(store) == []
    with pytest.raises(NotFound):
        await store.delete(ById(created.id), "")


# -- list -----------------------------------------------------------------------------------


async def test_list_pages_in_creation_order(store: Store) -> None:
    """Keyset pages of two follow creation order (not name or id order) and end empty."""
    names = ["m", "c", "x", "a", "q"]
    created = [await store.create(make(n)) for n in names]
    seen: list[Checkpoint] = []
    seqs: list[int] = []
    after = 0
    while page := await store.list(state=None, after=after, limit=2):
        assert len(page) <= 2
        seqs += [seq for seq, _ in page]
        seen += [c for _, c in page]
        after = page[-1][0]
    assert seen == created
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)


async def test_list_filters_by_state(store: Store) -> None:
    """A state filter returns only that state's checkpoints, still in creation order."""
    ready1 = await store.create(make("r1", state=State.READY))
    await store.create(make("c1"))
    ready2 = await store.create(make("r2", state=State.READY))
    await store.create(make("f1", state=State.FAILED))
    ready = await store.list(state=State.READY, after=0, limit=10)
    assert [c for _, c in ready] == [ready1, ready2]
    after_first = await store.list(state=State.READY, after=ready[0][0], limit=10)
    assert [c for _, c in after_first] == [ready2]
    assert await store.list(state=State.DELETING, after=0, limit=10) == []


# -- import_many ----------------------------------------------------------------------------


async def test_import_many_is_idempotent(store: Store) -> None:
    """Importing the same checkpoints twice writes them once; a changed one bumps its version."""
    batch = [make("i1"), make("i2"), make("i3")]
    assert await store.import_many(batch) == 3
    assert await store.import_many(batch) == 0
    # Times alone are not content: still nothing to write.
    retimed = [replace(c, update_time=T0 + timedelta(days=1)) for c in batch]
    assert await store.import_many(retimed) == 0
    changed = replace(batch[1], state=State.READY)
    assert await store.import_many([batch[0], changed, make("i4")]) == 2
    stored = await store.get(ById(changed.id))
    assert (stored.state, stored.version) == (State.READY, 2)
    assert [c.display_name for c in await everything(store)] == ["i1", "i2", "i3", "i4"]


async def test_import_many_is_one_transaction(store: Store) -> None:
    """An import whose second entry takes another checkpoint's name writes none of its entries."""
    existing = await store.create(make("owner"))
    with pytest.raises(AlreadyExists):
        await store.import_many([make("fresh"), make("owner")])
    assert await everything(store) == [existing]


# -- secret, ping, times --------------------------------------------------------------------


async def test_secret_is_stable_across_reopen(store_url: str) -> None:
    """A named secret is 32 random bytes, made once, and the same after the store is reopened."""
    first = open_store(store_url)
    try:
        page_key = await first.secret("page-token")
        other_key = await first.secret("other")
        assert await first.secret("page-token") == page_key
    finally:
        await first.close()
    assert len(page_key) == 32
    assert page_key != other_key
    second = open_store(store_url)
    try:
        assert await second.secret("page-token") == page_key
    finally:
        await second.close()


async def test_ping_answers(store: Store) -> None:
    """ping returns on a reachable store, and still does after writes."""
    await store.ping()
    await store.create(make("pinged"))
    await store.ping()
    assert [c.display_name for c in await everything(store)] == ["pinged"]


async def test_timestamps_round_trip_to_the_microsecond_in_utc(store: Store) -> None:
    """Times come back as the same instant, to the microsecond, as UTC-aware datetimes."""
    plus_five = timezone(timedelta(hours=5, minutes=30))
    created_at = datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=plus_five)
    checkpoint = replace(make("timely"), create_time=created_at, update_time=T0)
    await store.create(checkpoint)
    for found in [await store.get(ByName("timely")), (await everything(store))[0]]:
        assert found.create_time == created_at
        assert found.create_time.utcoffset() == timedelta(0)
        assert found.create_time.microsecond == 999999
        assert found.update_time == T0
    later = datetime(2099, 12, 31, 0, 0, 0, 1, tzinfo=UTC)
    await store.update(ByName("timely"), lambda c: replace(c, update_time=later))
    assert (await store.get(ByName("timely"))).update_time == later


async def test_unknown_scheme_is_invalid_argument() -> None:
    """A URL of a database the service does not know is refused before anything is opened."""
    with pytest.raises(InvalidArgument) as raised:
        open_store("mysql://localhost/db")
    assert "mysql" in raised.value.message


# -- PostgreSQL only ------------------------------------------------------------------------


def _database(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


async def _terminate_backends(server_url: str, database: str) -> None:
    """Kill every session of database, as a server restart or an idle timeout would."""
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )
        for _ in range(200):
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            await asyncio.sleep(0.01)
    raise AssertionError("the sessions did not end")


@pytest.mark.postgres
async def test_postgres_lost_connection_is_unavailable_then_recovers(
    postgres_url: str, postgres_database_url: str
) -> None:
    """Writes on a killed connection are Unavailable (no SQL shown); reads retry; both recover."""
    store = open_store(postgres_database_url, pool_size=1)
    try:
        created = await store.create(make("survivor"))
        await _terminate_backends(postgres_url, _database(postgres_database_url))
        with pytest.raises(Unavailable) as raised:
            await store.create(make("lost"))
        assert raised.value.message == "the checkpoint store is unavailable"
        assert isinstance(raised.value.__cause__, psycopg.OperationalError)
        assert await store.create(make("after")) is not None
        await _terminate_backends(postgres_url, _database(postgres_database_url))
        assert await store.get(ById(created.id)) == created
        assert [c.display_name for c in await everything(store)] == ["survivor", "after"]
    finally:
        await store.close()


@pytest.mark.postgres
async def test_postgres_unreachable_server_is_unavailable() -> None:
    """A server that is not there makes the first call Unavailable, with the cause kept."""
    store = open_store("postgresql://postgres@127.0.0.1:1/nothing?connect_timeout=2")
    try:
        with pytest.raises(Unavailable) as raised:
            await store.ping()
        assert isinstance(raised.value.__cause__, psycopg.OperationalError)
    finally:
        await store.close()


@pytest.mark.postgres
async def test_postgres_replicas_starting_together_migrate_once(
    postgres_database_url: str,
) -> None:
    """Three stores starting at once on one database apply each migration exactly once."""
    stores = [PostgresStore.open(postgres_database_url, pool_size=1) for _ in range(3)]
    try:
        await asyncio.gather(*(s.start() for s in stores))
        assert await stores[0].create(make("shared")) is not None
        assert (await stores[2].get(ByName("shared"))).display_name == "shared"
    finally:
        for s in stores:
            await s.close()
    with psycopg.connect(postgres_database_url) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [v for (v,) in rows] == [v for v, _ in POSTGRES_MIGRATIONS]


@pytest.mark.postgres
async def test_postgres_scheme_spelling_is_normalised(postgres_database_url: str) -> None:
    """postgres:// opens the same database as postgresql://."""
    spelled = "postgres://" + postgres_database_url.split("://", 1)[1]
    store = open_store(spelled, pool_size=1)
    try:
        await store.create(make("either"))
    finally:
        await store.close()
    again = open_store(postgres_database_url, pool_size=1)
    try:
        assert (await again.get(ByName("either"))).display_name == "either"
    finally:
        await again.close()


async def test_postgres_bad_url_or_pool_size_is_invalid_argument_without_the_password() -> None:
    """An unparsable URL or a pool size below 1 is InvalidArgument; the password is not echoed."""
    with pytest.raises(InvalidArgument) as bad_url:
        open_store("postgresql://me:hunter2@localhost/db?no_such_option=1")
    assert "hunter2" not in bad_url.value.message
    with pytest.raises(InvalidArgument) as bad_size:
        open_store("postgresql://localhost/db", pool_size=0)
    assert "pool size" in bad_size.value.message
