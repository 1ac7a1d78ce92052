"""psycopg and redis are extras: a URL that needs a missing one fails with a message naming it.

Each test hides the driver (sys.modules[name] = None makes `import name` fail as if it were not
installed) and forgets the backend module, so the factory's lazy import runs again.
"""

from __future__ import annotations

import sys

import pytest

from server.errors import InvalidArgument, missing_extra
from server.ratelimit import RateLimiter, open_rate_limiter
from server.store import open_store


def _hide(monkeypatch: pytest.MonkeyPatch, driver: str, backend: str) -> None:
    for name in [m for m in sys.modules if m == driver or m.startswith(f"{driver}.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, driver, None)
    monkeypatch.delitem(sys.modules, backend, raising=False)


@pytest.mark.parametrize("driver", ["psycopg", "psycopg_pool"])
def test_postgres_without_psycopg_names_the_postgres_extra(
    monkeypatch: pytest.MonkeyPatch, driver: str
) -> None:
    _hide(monkeypatch, driver, "server.store._postgres")
    with pytest.raises(InvalidArgument) as caught:
        open_store("postgresql://u:secret@127.0.0.1/db")
    message = str(caught.value)
    assert "PostgreSQL needs the postgres extra" in message
    assert "pip install 'checkpoint-metadata[postgres]'" in message
    assert "secret" not in message
    assert isinstance(caught.value.__cause__, ImportError)


@pytest.mark.anyio
async def test_sqlite_needs_no_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "psycopg", "server.store._postgres")
    store = open_store("sqlite:///:memory:")
    try:
        await store.ping()
        assert "server.store._postgres" not in sys.modules
    finally:
        await store.close()


def test_redis_rate_limit_store_without_redis_names_the_redis_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _hide(monkeypatch, "redis", "server.ratelimit._redis")
    with pytest.raises(InvalidArgument) as caught:
        open_rate_limiter(10, 5, "redis://:secret@127.0.0.1:6379/0")
    message = str(caught.value)
    assert "needs the redis extra: pip install 'checkpoint-metadata[redis]'" in message
    assert "secret" not in message
    # Without a shared store nothing needs redis.
    assert isinstance(open_rate_limiter(10, 5, None), RateLimiter)


def test_an_import_error_of_another_module_is_not_blamed_on_an_extra() -> None:
    ours = ImportError("cannot import name 'x' from 'server.domain'", name="server.domain")
    assert missing_extra(ours, "PostgreSQL", "postgres", ("psycopg",)) is None
    nameless = ImportError("no pq wrapper available")
    error = missing_extra(nameless, "PostgreSQL", "postgres", ("psycopg",))
    assert error is not None
    assert "no pq wrapper available" in str(error)
