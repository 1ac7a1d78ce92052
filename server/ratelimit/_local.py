"""Rate-limit buckets kept in this process: each replica has a budget of its own per token."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from server.errors import RateLimited


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


def spend(tokens: float, elapsed: float, rate: float, burst: int) -> tuple[float, bool]:
    """A bucket's tokens after elapsed seconds of refill (capped at burst) and one call taken
    from it, and whether there was one to take: the one bucket rule, in-process or shared."""
    tokens = min(burst, tokens + max(0.0, elapsed) * rate)
    if tokens >= 1:
        return tokens - 1, True
    return tokens, False


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
        bucket.tokens, allowed = spend(bucket.tokens, now - bucket.stamp, self.rate, self.burst)
        bucket.stamp = now
        if not allowed:
            raise refused(self.rate, (1 - bucket.tokens) / self.rate)

    async def aclose(self) -> None:
        """Nothing to release."""
