"""Rate-limit buckets in Redis, shared by every replica: a token's budget is one budget.

Each token's bucket is one Redis hash, `<prefix><token name>` holding the calls left and when they
were counted. One Lua script (run with EVALSHA, loaded again if Redis lost it) reads the bucket,
refills it for the time elapsed, takes one call or computes the wait, and writes it back, so calls
from any number of replicas at once are serialised by Redis and never spend one call twice. The
time is Redis's own (`TIME`), never a replica's, so replicas with skewed clocks agree. Every write
sets a TTL of the time an empty bucket takes to refill, plus a second: an idle bucket expires just
when it would be full again, so the keys of idle tokens vanish and no answer changes.

Policy when Redis cannot answer (connection refused or lost, an error reply, or no answer within
`TIMEOUT`, 0.25 s): **fail open, to this replica's own buckets.** The call is not refused because
Redis is away; it is charged to a local `RateLimiter` with the same rate and burst, so a token
still has a limit during the outage (its budget per replica, at most N times the shared one over N
replicas) rather than none. Open, because the limit protects the service from a runaway client
and decides no access (authentication and scopes need no Redis): failing closed would turn an
outage of this auxiliary store into an outage of the whole API while PostgreSQL, which holds the
data, is fine. After a failure Redis is left alone for `RETRY_INTERVAL` (1 s) and then one call
probes it, so an outage costs each replica at most one timeout a second, not one per call. A
warning (naming the Redis host, never its password) is logged at the first failure and then at
most once per `LOG_INTERVAL` while it lasts, with the number of calls limited locally meanwhile;
an info line says when Redis answers again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from server.errors import InvalidArgument
from server.ratelimit._local import RateLimiter, refused

log = logging.getLogger(__name__)

KEY_PREFIX = "checkpoint:ratelimit:"
TIMEOUT = 0.25
"""Seconds one bucket update may take in all (connecting included) before the call fails open."""
RETRY_INTERVAL = 1.0
"""Seconds after a failure during which Redis is not tried and the local buckets answer."""
LOG_INTERVAL = 30.0
"""Seconds between two warnings about one outage."""
MAX_CONNECTIONS = 64
"""Connections to Redis per replica; a call waits (within TIMEOUT) for a free one."""

# KEYS[1]: the bucket, a hash {tokens, stamp}; stamp is in microseconds of Redis's clock.
# ARGV: rate (calls per second, > 0), burst (>= 1), TTL in milliseconds.
# Returns {1, "0"} when the call may go on, {0, "<seconds until one call is available>"} when not.
# Numbers go back as strings: Redis would truncate a Lua number to an integer.
BUCKET_SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(state[1])
local stamp = tonumber(state[2])
if tokens == nil or stamp == nil then
  tokens = burst
elseif now > stamp then
  tokens = math.min(burst, tokens + (now - stamp) / 1000000 * rate)
else
  now = stamp
end
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
  'stamp', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {allowed, string.format('%.17g', wait)}
"""


def describe_store(url: str) -> str:
    """Where a Redis URL points, for logs and errors: host and port (or socket path), no secret."""
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return f"unix:{parts.path}"
        return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
    except ValueError:
        return "(an invalid URL)"


class RedisRateLimiter:
    """Token buckets kept in Redis, one per key, shared by every limiter using the same Redis.

    rate 0 (or below) disables limiting; burst below 1 counts as 1, as RateLimiter does.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        rate: float,
        burst: int,
        *,
        prefix: str = KEY_PREFIX,
        where: str = "redis",
        timeout: float = TIMEOUT,
        retry_interval: float = RETRY_INTERVAL,
        log_interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst = rate, max(burst, 1)
        self.prefix = prefix
        self.ttl_ms = math.ceil(self.burst / rate * 1000) + 1000 if rate > 0 else 0
        self._client = client
        self._script = client.register_script(BUCKET_SCRIPT)
        self._where = where
        self._timeout, self._retry_interval, self._log_interval = (
            timeout,
            retry_interval,
            log_interval,
        )
        self._clock = clock
        self.fallback = RateLimiter(rate, burst, clock=clock)
        """The buckets of this replica, charged while Redis cannot answer."""
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._probing = False
        self._logged_at = -math.inf
        self._local_calls = 0

    @classmethod
    def from_url(
        cls, url: str, rate: float, burst: int, *, prefix: str = KEY_PREFIX, **options: Any
    ) -> RedisRateLimiter:
        """A limiter on the Redis at url (redis://, rediss:// or unix://); nothing connects yet.

        Raises:
            InvalidArgument: the URL cannot be parsed (the message does not repeat it).
        """
        timeout = float(options.get("timeout", TIMEOUT))
        try:
            pool = aioredis.BlockingConnectionPool.from_url(
                url,
                max_connections=MAX_CONNECTIONS,
                timeout=timeout,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
            )
        except (ValueError, TypeError) as exc:
            raise InvalidArgument(
                "invalid rate-limit store URL: use redis://[USER:PASSWORD@]HOST:PORT/DB"
            ) from exc
        client = aioredis.Redis.from_pool(pool)
        return cls(client, rate, burst, prefix=prefix, where=describe_store(url), **options)

    @property
    def degraded(self) -> bool:
        """True while Redis is considered unreachable and the local buckets answer."""
        return self._down_since is not None

    async def acquire(self, key: str) -> None:
        """Take one call from key's shared bucket (from the local one while Redis is away).

        Raises:
            RateLimited: the bucket is empty; retry_after says when one call is available.
        """
        if self.rate <= 0:
            return
        probing = False
        if self._down_since is not None:
            if self._probing or self._clock() < self._retry_at:
                self._charge_locally(key)
                return
            probing = self._probing = True
        try:
            async with asyncio.timeout(self._timeout):
                reply = await self._script(
                    keys=[self.prefix + key], args=[repr(self.rate), self.burst, self.ttl_ms]
                )
            allowed, wait = int(reply[0]), float(reply[1])
        except (RedisError, OSError, TimeoutError, ValueError, TypeError, IndexError) as exc:
            self._failed(exc)
            self._charge_locally(key)
            return
        finally:
            if probing:
                self._probing = False
        if self._down_since is not None:
            self._recovered()
        if not allowed:
            raise refused(self.rate, wait)

    def _charge_locally(self, key: str) -> None:
        self._local_calls += 1
        self.fallback.take(key)

    def _failed(self, exc: BaseException) -> None:
        now = self._clock()
        self._retry_at = now + self._retry_interval
        if self._down_since is None:
            self._down_since = now
        if now - self._logged_at >= self._log_interval:
            self._logged_at = now
            log.warning(
                "rate-limit store %s unreachable (%s); failing open to this replica's own "
                "buckets (%d call(s) limited locally so far); next try in %.1f s",
                self._where,
                type(exc).__name__,
                self._local_calls,
                self._retry_interval,
            )

    def _recovered(self) -> None:
        down_for = self._clock() - (self._down_since or 0.0)
        log.info(
            "rate-limit store %s answers again after %.1f s; %d call(s) were limited locally",
            self._where,
            down_for,
            self._local_calls,
        )
        self._down_since = None
        self._local_calls = 0
        self._logged_at = -math.inf

    async def aclose(self) -> None:
        """Close the Redis connections."""
        await self._client.aclose()
