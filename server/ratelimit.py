"""Per-token rate limits: one token bucket per token name, refilled continuously."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from server.errors import RateLimited


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Allows rate calls per second per key with bursts up to burst; rate 0 disables it."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst = rate, max(burst, 1)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def acquire(self, key: str) -> None:
        """Take one call from key's bucket.

        Raises:
            RateLimited: the bucket is empty; retry_after says when one call is available.
        """
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
        wait = (1 - bucket.tokens) / self.rate
        raise RateLimited(
            f"rate limit of {self.rate:g} requests per second exceeded; retry in {wait:.2f} s",
            retry_after=wait,
        )
