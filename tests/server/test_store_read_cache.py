"""The SQLite store's read cache (server/store/_read_cache.py): a get answers what a SELECT would.

Two stores on one file stand for two workers (or a second replica, or an import): whatever one
commits, the other's next get sees, by id and by name; and two servers on one file answer
GetCheckpoint over real channels with the current row after a write through the other.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from checkpoint.v1 import checkpoint_pb2 as pb
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc
from google.protobuf import field_mask_pb2

from server.app import create_server
from server.config import ServerConfig
from server.domain import ById, ByName, Checkpoint
from server.errors import NotFound
from server.store import Store, open_store
from server.store._read_cache import ReadCache
from server.tokens import READ_SCOPE, WRITE_SCOPE, TokenRecord, hash_token
from tests.server.test_store import make

pytestmark = pytest.mark.anyio

TOKEN = "ckpt_cache_both"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one SQLite file, as two worker processes have."""
    url = f"sqlite:///{tmp_path}/shared.db"
    first, second = open_store(url), open_store(url)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_an_unchanged_row_is_answered_from_the_cache(pair: tuple[Store, Store]) -> None:
    store, _ = pair
    created = await store.create(make("kept"))
    first = await store.get(ById(created.id))
    assert first == created
    assert await store.get(ById(created.id)) is first  # the same object: no SELECT, no decoding


async def test_a_get_sees_what_another_connection_committed(pair: tuple[Store, Store]) -> None:
    reader, writer = pair
    created = await writer.create(make("before"))
    assert (await reader.get(ById(created.id))).display_name == "before"
    assert (await reader.get(ByName("before"))).id == created.id

    def rename(current: Checkpoint) -> Checkpoint:
        return replace(current, display_name="after", version=current.version + 1)

    await writer.update(ById(created.id), rename)
    renamed = await reader.get(ById(created.id))
    assert (renamed.display_name, renamed.etag) == ("after", "v2")
    with pytest.raises(NotFound):
        await reader.get(ByName("before"))
    assert (await reader.get(ByName("after"))).id == created.id
    await writer.delete(ById(created.id), "")
    with pytest.raises(NotFound):
        await reader.get(ById(created.id))


async def test_a_get_sees_its_own_stores_writes(pair: tuple[Store, Store]) -> None:
    store, _ = pair
    created = await store.create(make("own"))
    assert (await store.get(ById(created.id))).version == 1
    await store.update(ById(created.id), lambda c: replace(c, version=c.version + 1))
    assert (await store.get(ById(created.id))).version == 2


async def test_an_in_memory_store_sees_its_writes() -> None:
    """:memory: is a shared-cache database: the reader's data_version follows the writer's
    commits there too."""
    store = open_store("sqlite:///:memory:")
    try:
        created = await store.create(make("memory"))
        assert (await store.get(ById(created.id))).version == 1
        await store.update(ById(created.id), lambda c: replace(c, version=c.version + 1))
        assert (await store.get(ById(created.id))).version == 2
    finally:
        await store.close()


async def test_a_full_cache_starts_over(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "plain.db", isolation_level=None)
    cache = ReadCache(conn, limit=2)
    rows = [make(f"n{i}") for i in range(3)]
    entries = cache.current()
    for row in rows:
        cache.keep(entries, ById(row.id), row)
    assert list(cache.current()) == [ById(rows[2].id)]  # cleared at the third, then kept
    conn.execute("CREATE TABLE t (x)")  # this connection's own write: not another's commit
    assert list(cache.current()) == [ById(rows[2].id)]
    other = sqlite3.connect(tmp_path / "plain.db", isolation_level=None)
    other.execute("INSERT INTO t VALUES (1)")
    assert cache.current() == {}
    other.close()
    conn.close()


async def test_two_servers_on_one_file_answer_the_current_row(tmp_path: Path) -> None:
    """Over real channels: a reply made (and kept) by one server is not answered again once the
    other server changed the row."""
    record = TokenRecord("both", hash_token(TOKEN), frozenset({READ_SCOPE, WRITE_SCOPE}))
    url = f"sqlite:///{tmp_path}/servers.db"
    stores = [open_store(url), open_store(url)]
    config = ServerConfig(listen="127.0.0.1:0", database=url, rate_limit=0)
    servers = [await create_server(config, s, {record.sha256: record}) for s in stores]
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{s.port}") for s in servers]
    reader, writer = (svc_grpc.CheckpointServiceStub(c) for c in channels)
    try:
        created = await stores[1].create(make("served"))
        get = svc.GetCheckpointRequest(checkpoint_id=created.id)
        for _ in range(2):
            reply = await reader.GetCheckpoint(get, metadata=AUTH)
            assert (reply.checkpoint.display_name, reply.checkpoint.etag) == ("served", "v1")
        update = svc.UpdateCheckpointRequest(
            checkpoint_id=created.id,
            checkpoint=pb.Checkpoint(display_name="renamed"),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        )
        await writer.UpdateCheckpoint(update, metadata=AUTH)
        reply = await reader.GetCheckpoint(get, metadata=AUTH)
        assert (reply.checkpoint.display_name, reply.checkpoint.etag) == ("renamed", "v2")
        by_name = svc.GetCheckpointRequest(checkpoint_id="renamed")
        assert (await reader.GetCheckpoint(by_name, metadata=AUTH)).checkpoint.id == created.id
    finally:
        for channel in channels:
            await channel.close(None)
        for server in servers:
            await server.server.stop(None)
            await server.limiter.aclose()
        for store in stores:
            await store.close()
