"""Per-token rate limits: one token bucket per token name, refilled continuously.

`Limiter` is what the call guard needs: `await limiter.acquire(token_name)` returns when the call
may go on and raises RateLimited (with the time until one call is available) when it may not.
Two implementations:

- `RateLimiter` keeps the buckets in this process: each replica has its own budget per token.
- `server.ratelimit_redis.RedisRateLimiter` keeps them in Redis, so every replica pointed at the
  same Redis takes from one budget per token (`--rate-limit-store redis://...`). When Redis cannot
  answer it fails open to a `RateLimiter` of this process; see that module for the policy.

`open_rate_limiter` picks one from the configuration.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from server.errors import InvalidArgument, RateLimited

REDIS_SCHEMES = ("redis", "rediss", "unix")


class Limiter(Protocol):
    async def acquire(self, key: str) -> None:
        """Take one call from key's bucket. Raises RateLimited when it is empty."""
        ...

    async def aclose(self) -> None:
        """Release connections the limiter holds (nothing for the local one)."""
        ...


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


def refused(rate: float, wait: float) -> RateLimited:
    """The error for a call refused by a bucket refilled at rate that has one call in wait s."""
    return RateLimited(
        f"rate limit of {rate:g} requests per second exceeded; retry in {wait:.2f} s",
        retry_after=wait,
    )


class RateLimiter:
    """Allows rate calls per second per key with bursts up to burst; rate 0 disables it.

    The buckets live in this process, so each replica has a budget of its own.
    """

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst = rate, max(burst, 1)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    async def acquire(self, key: str) -> None:
        """Take one call from key's bucket.

        Raises:
            RateLimited: the bucket is empty; retry_after says when one call is available.
        """
        self.take(key)

    def take(self, key: str) -> None:
        """acquire without a coroutine (it never waits): the same bucket, the same errors."""
        if self.rate <= 0:
            return
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), stamp=now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return
        raise refused(self.rate, (1 - bucket.tokens) / self.rate)

    async def aclose(self) -> None:
        """Nothing to release."""


def open_rate_limiter(rate: float, burst: int, store_url: str | None) -> Limiter:
    """The limiter for a configuration: Redis-backed when store_url is given, local otherwise.

    With rate 0 (no limit) no Redis client is made, whatever store_url says. Nothing connects
    here: the Redis client connects on its first call.

    Raises:
        InvalidArgument: store_url is not a redis://, rediss:// or unix:// URL, or is malformed.
    """
    if not store_url or rate <= 0:
        return RateLimiter(rate, burst)
    scheme = store_url.split(":", 1)[0].lower()
    if scheme not in REDIS_SCHEMES or "://" not in store_url:
        raise InvalidArgument(
            f"unsupported rate-limit store URL scheme {scheme!r}: "
            "use redis://HOST:PORT/DB, rediss://... or unix:///PATH"
        )
    # Imported here so that a deployment without a shared store never loads the Redis client.
    from server.ratelimit_redis import RedisRateLimiter

    return RedisRateLimiter.from_url(store_url, rate, burst)
