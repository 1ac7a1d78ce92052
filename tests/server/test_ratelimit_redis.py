"""Tests of server.ratelimit._redis against a real Redis: shared buckets and the Redis-down policy.

Two limiters on one Redis stand for two replicas. Each test keys its buckets under a prefix of its
own (the `redis_key_prefix` fixture of tests/redis.py), so tests sharing a Redis are independent.
The outage tests point a limiter at a port nothing listens on, at a socket that accepts and never
answers, and at a throwaway Redis that is stopped and started again.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis

from server.errors import InvalidArgument, RateLimited
from server.ratelimit import RateLimiter, open_rate_limiter
from server.ratelimit._redis import TIMEOUT, RedisRateLimiter
from tests.redis import ThrowawayRedis

KEY = "ci-token"
SLOW = 0.001  # calls per second: no refill worth counting within a test


@asynccontextmanager
async def _limiters(
    url: str, count: int, rate: float, burst: int, prefix: str, **options: Any
) -> AsyncIterator[list[RedisRateLimiter]]:
    """count limiters (replicas) on the Redis at url, each with its own client, closed after.

    Their timeout is 2 s unless a test sets one: on a loaded machine the production 0.25 s would
    let a slow answer fail open, and the tests of the shared bucket would count local calls.
    """
    options.setdefault("timeout", 2.0)
    async with AsyncExitStack() as stack:
        made = []
        for _ in range(count):
            limiter = RedisRateLimiter.from_url(url, rate, burst, prefix=prefix, **options)
            stack.push_async_callback(limiter.aclose)
            made.append(limiter)
        yield made


@asynccontextmanager
async def _client(url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain Redis client to look at what the limiters stored."""
    client = aioredis.Redis.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()


async def _stored(client: aioredis.Redis, key: str, field: str) -> float:
    """A number a limiter stored in the hash key, -1 when it is not there."""
    reply = client.hget(key, field)
    assert inspect.isawaitable(reply)
    value = await reply
    return float(value) if value is not None else -1.0


async def _outcomes(limiters: list[RedisRateLimiter], calls: int) -> list[bool]:
    """Fire calls acquires at once, spread over limiters; True for each one allowed."""
    results = await asyncio.gather(
        *(limiters[i % len(limiters)].acquire(KEY) for i in range(calls)),
        return_exceptions=True,
    )
    for result in results:
        if result is not None and not isinstance(result, RateLimited):
            raise result
    return [result is None for result in results]


@pytest.fixture
def dead_url() -> str:
    """A redis:// URL (with a password) of a 127.0.0.1 port that nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return f"redis://:sekrit-password@127.0.0.1:{port}/0"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A redis:// URL of a socket that accepts connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"redis://127.0.0.1:{sock.getsockname()[1]}/0"


@pytest.mark.anyio
async def test_replicas_share_one_budget(redis_url: str, redis_key_prefix: str) -> None:
    """Two replicas take from one bucket per token: burst calls in all, then both refuse."""
    async with _limiters(redis_url, 2, SLOW, 3, redis_key_prefix) as (a, b):
        await a.acquire(KEY)
        await b.acquire(KEY)
        await a.acquire(KEY)
        for limiter in (b, a):
            with pytest.raises(RateLimited) as caught:
                await limiter.acquire(KEY)
            assert caught.value.retry_after > 0
        assert not a.degraded
        assert not b.degraded


@pytest.mark.anyio
async def test_concurrent_calls_never_overspend(redis_url: str, redis_key_prefix: str) -> None:
    """Forty calls at once through two replicas: exactly burst of them are allowed."""
    async with _limiters(redis_url, 2, SLOW, 5, redis_key_prefix) as limiters:
        allowed = await _outcomes(limiters, 40)
    assert allowed.count(True) == 5


@pytest.mark.anyio
async def test_tokens_have_separate_buckets(redis_url: str, redis_key_prefix: str) -> None:
    """One token's exhaustion does not limit another token, on any replica."""
    async with _limiters(redis_url, 2, SLOW, 1, redis_key_prefix) as (a, b):
        await a.acquire("first")
        with pytest.raises(RateLimited):
            await b.acquire("first")
        await b.acquire("second")


@pytest.mark.anyio
async def test_retry_after_then_refill(redis_url: str, redis_key_prefix: str) -> None:
    """retry_after is the time to one call; after it, one more call is allowed, not two."""
    # Rate 2: the last refusal holds unless the calls after the sleep take over 0.4 s.
    async with _limiters(redis_url, 2, 2, 2, redis_key_prefix) as (a, b):
        await a.acquire(KEY)
        await b.acquire(KEY)
        with pytest.raises(RateLimited) as caught:
            await a.acquire(KEY)
        assert 0 < caught.value.retry_after <= 0.5 + 1e-6
        assert "2 requests per second" in caught.value.message
        await asyncio.sleep(caught.value.retry_after + 0.05)
        await b.acquire(KEY)
        with pytest.raises(RateLimited):
            await a.acquire(KEY)


@pytest.mark.anyio
async def test_refused_calls_do_not_consume(redis_url: str, redis_key_prefix: str) -> None:
    """Refused calls take nothing, so the wait shrinks, never grows, while a client retries."""
    async with _limiters(redis_url, 1, 1, 1, redis_key_prefix) as (limiter,):
        await limiter.acquire(KEY)
        waits = []
        for _ in range(5):
            with pytest.raises(RateLimited) as caught:
                await limiter.acquire(KEY)
            waits.append(caught.value.retry_after)
    assert all(0 < wait <= 1.0 for wait in waits), waits
    assert waits == sorted(waits, reverse=True), waits


@pytest.mark.anyio
async def test_bucket_has_ttl_and_redis_time(redis_url: str, redis_key_prefix: str) -> None:
    """A bucket key expires after a full refill time plus a second, stamped with Redis's clock."""
    async with (
        _limiters(redis_url, 1, 4, 8, redis_key_prefix) as (limiter,),
        _client(redis_url) as client,
    ):
        await limiter.acquire(KEY)
        assert limiter.ttl_ms == math.ceil(8 / 4 * 1000) + 1000
        ttl = await client.pttl(redis_key_prefix + KEY)
        assert 0 < ttl <= limiter.ttl_ms
        tokens = await _stored(client, redis_key_prefix + KEY, "tokens")
        stamp = await _stored(client, redis_key_prefix + KEY, "stamp")
        seconds, micros = await client.time()
    assert tokens == pytest.approx(7, abs=0.1)
    assert abs(stamp - (seconds * 1_000_000 + micros)) < 5_000_000


@pytest.mark.anyio
async def test_idle_bucket_vanishes(redis_url: str, redis_key_prefix: str) -> None:
    """With a fast refill the TTL is short, and the key is gone once it passes."""
    async with (
        _limiters(redis_url, 1, 1000, 1, redis_key_prefix) as (limiter,),
        _client(redis_url) as client,
    ):
        await limiter.acquire(KEY)
        assert await client.exists(redis_key_prefix + KEY) == 1
        for _ in range(50):  # the TTL is 1.001 s; wait up to 5 s
            if not await client.exists(redis_key_prefix + KEY):
                break
            await asyncio.sleep(0.1)
        assert await client.exists(redis_key_prefix + KEY) == 0
        await limiter.acquire(KEY)  # a vanished bucket is a full one


@pytest.mark.anyio
async def test_redis_down_fails_open_to_local_buckets(
    dead_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis refusing connections: calls go on, limited by this replica's own bucket; 1 warning."""
    caplog.set_level(logging.WARNING, logger="server.ratelimit._redis")
    async with _limiters(dead_url, 1, SLOW, 2, "p:") as (limiter,):
        started = time.monotonic()
        await limiter.acquire(KEY)
        await limiter.acquire(KEY)
        with pytest.raises(RateLimited):
            await limiter.acquire(KEY)
        assert time.monotonic() - started < 2.0
        assert limiter.degraded
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    assert "failing open" in warnings[0].getMessage()
    assert dead_url.removeprefix("redis://:sekrit-password@").removesuffix("/0") in (
        warnings[0].getMessage()
    )
    assert "sekrit" not in caplog.text


@pytest.mark.anyio
async def test_silent_redis_costs_one_timeout(silent_url: str) -> None:
    """A Redis that never answers delays one call by the timeout; the next calls skip it."""
    async with _limiters(silent_url, 1, SLOW, 100, "p:", retry_interval=60.0, timeout=TIMEOUT) as (
        limiter,
    ):
        started = time.monotonic()
        await limiter.acquire(KEY)
        first = time.monotonic() - started
        started = time.monotonic()
        for _ in range(20):
            await limiter.acquire(KEY)
        rest = time.monotonic() - started
    assert limiter.degraded
    assert first < 1.0
    assert rest < 0.2


@pytest.mark.anyio
async def test_shared_buckets_again_when_redis_returns(redis_server_binary: str) -> None:
    """After an outage the limiter probes Redis again and goes back to the shared bucket."""
    server = ThrowawayRedis(redis_server_binary)
    try:
        server.start()
        async with (
            _limiters(server.url, 1, SLOW, 10, "p:", retry_interval=0.05) as (limiter,),
            _client(server.url) as client,
        ):
            await limiter.acquire(KEY)
            assert await client.exists(f"p:{KEY}") == 1
            server.stop()
            await limiter.acquire(KEY)
            assert limiter.degraded
            server.start()  # the same port, an empty Redis
            await asyncio.sleep(0.1)
            await limiter.acquire(KEY)
            assert not limiter.degraded
            assert await _stored(client, f"p:{KEY}", "tokens") == pytest.approx(9)
    finally:
        server.stop()
        server.remove()


@pytest.mark.anyio
async def test_rate_zero_never_touches_redis(dead_url: str) -> None:
    """Rate 0 means no limit: the factory makes no Redis client, and a Redis limiter allows all."""
    assert isinstance(open_rate_limiter(0, 5, dead_url), RateLimiter)
    async with _limiters(dead_url, 1, 0, 1, "p:") as (limiter,):
        for _ in range(100):
            await limiter.acquire(KEY)
        assert not limiter.degraded


@pytest.mark.anyio
async def test_open_rate_limiter_picks_the_store(redis_url: str) -> None:
    """No URL keeps buckets local; a redis:// URL shares them; anything else is refused."""
    assert isinstance(open_rate_limiter(1, 5, None), RateLimiter)
    assert isinstance(open_rate_limiter(1, 5, ""), RateLimiter)
    shared = open_rate_limiter(1, 5, redis_url)
    try:
        assert isinstance(shared, RedisRateLimiter)
    finally:
        await shared.aclose()
    with pytest.raises(InvalidArgument, match="unsupported rate-limit store"):
        open_rate_limiter(1, 5, "http://127.0.0.1:6379")
    with pytest.raises(InvalidArgument, match="invalid rate-limit store URL") as caught:
        open_rate_limiter(1, 5, "redis://:sekrit@127.0.0.1:notaport/0")
    assert "sekrit" not in caught.value.message
