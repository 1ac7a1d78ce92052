"""Per-token rate limits: one token bucket per token name, refilled continuously.

`Limiter` is what the call guard needs: `await limiter.acquire(token_name)` returns when the call
may go on and raises RateLimited (with the time until one call is available) when it may not.
Two implementations, private modules of this package (the store's shape: protocol and factory
here, backends beside it, importing only `_local` and never this module's factory):

- `RateLimiter` (`_local`) keeps the buckets in this process: each replica has its own budget per
  token.
- `RedisRateLimiter` (`_redis`) keeps them in Redis, so every replica pointed at the same Redis
  takes from one budget per token (`--rate-limit-store redis://...`). When Redis cannot answer it
  fails open to a `RateLimiter` of this process; see that module for the policy. It is imported
  only when a Redis URL is given, so the redis client is an extra (`checkpoint-metadata[redis]`).

`open_rate_limiter` picks one from the configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from server.errors import InvalidArgument, missing_extra
from server.ratelimit._local import RateLimiter, refused
from server.ratelimit._shared import SharedRateLimiter

__all__ = ["Limiter", "RateLimiter", "SharedRateLimiter", "open_rate_limiter", "refused"]

REDIS_SCHEMES = ("redis", "rediss", "unix")


class Limiter(Protocol):
    async def acquire(self, key: str) -> None:
        """Take one call from key's bucket. Raises RateLimited when it is empty."""
        ...

    async def aclose(self) -> None:
        """Release connections the limiter holds (nothing for the local one)."""
        ...


def open_rate_limiter(
    rate: float, burst: int, store_url: str | None, shared: Path | None = None
) -> Limiter:
    """The limiter for a configuration: Redis-backed when store_url is given, else in a file
    shared by the workers of this machine when shared is given, else in this process.

    With rate 0 (no limit) no Redis client is made, whatever store_url says. Nothing connects
    here: the Redis client connects on its first call.

    Raises:
        InvalidArgument: store_url is not a redis://, rediss:// or unix:// URL, or is malformed,
            or the redis extra that a Redis store needs is not installed.
    """
    if not store_url or rate <= 0:
        if shared is not None and rate > 0:
            return SharedRateLimiter(shared, rate, burst)
        return RateLimiter(rate, burst)
    scheme = store_url.split(":", 1)[0].lower()
    if scheme not in REDIS_SCHEMES or "://" not in store_url:
        raise InvalidArgument(
            f"unsupported rate-limit store URL scheme {scheme!r}: "
            "use redis://HOST:PORT/DB, rediss://... or unix:///PATH"
        )
    # Imported here so that a deployment without a shared store never loads (or needs) redis.
    try:
        from server.ratelimit._redis import RedisRateLimiter
    except ImportError as exc:
        error = missing_extra(exc, "a Redis rate-limit store", "redis", ("redis",))
        if error is None:
            raise
        raise error from exc

    return RedisRateLimiter.from_url(store_url, rate, burst)
