"""Unit tests of server.ratelimit: the per-token bucket, driven by a fake clock."""

from __future__ import annotations

import pytest

from server.errors import RateLimited
from server.ratelimit import RateLimiter


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock starting at an arbitrary instant."""
    return FakeClock()


async def _drain(limiter: RateLimiter, key: str, calls: int) -> None:
    for _ in range(calls):
        await limiter.acquire(key)


@pytest.mark.anyio
async def test_burst_then_refused(clock: FakeClock) -> None:
    """A new key may make `burst` calls at once; the next one is RESOURCE_EXHAUSTED."""
    limiter = RateLimiter(rate=2, burst=5, clock=clock)
    await _drain(limiter, "ci", 5)
    with pytest.raises(RateLimited):
        await limiter.acquire("ci")


@pytest.mark.anyio
async def test_retry_after_is_time_to_one_call(clock: FakeClock) -> None:
    """retry_after is how long until one whole call is available, and the message says it."""
    limiter = RateLimiter(rate=4, burst=1, clock=clock)
    await limiter.acquire("ci")
    with pytest.raises(RateLimited) as caught:
        await limiter.acquire("ci")
    assert caught.value.retry_after == pytest.approx(0.25)
    assert "retry in 0.25 s" in caught.value.message
    assert "4 requests per second" in caught.value.message


@pytest.mark.anyio
async def test_retry_after_counts_partial_refill(clock: FakeClock) -> None:
    """A partly refilled bucket waits only for the rest of one call."""
    limiter = RateLimiter(rate=1, burst=1, clock=clock)
    await limiter.acquire("ci")
    clock.advance(0.4)
    with pytest.raises(RateLimited) as caught:
        await limiter.acquire("ci")
    assert caught.value.retry_after == pytest.approx(0.6)


@pytest.mark.anyio
async def test_refill_after_waiting(clock: FakeClock) -> None:
    """After retry_after has passed, one more call is allowed, but not two."""
    limiter = RateLimiter(rate=10, burst=2, clock=clock)
    await _drain(limiter, "ci", 2)
    with pytest.raises(RateLimited) as caught:
        await limiter.acquire("ci")
    clock.advance(caught.value.retry_after)
    await limiter.acquire("ci")
    with pytest.raises(RateLimited):
        await limiter.acquire("ci")


@pytest.mark.anyio
async def test_refill_is_capped_at_burst(clock: FakeClock) -> None:
    """A long idle time refills the bucket to burst, no more."""
    limiter = RateLimiter(rate=100, burst=3, clock=clock)
    await _drain(limiter, "ci", 3)
    clock.advance(3600)
    await _drain(limiter, "ci", 3)
    with pytest.raises(RateLimited):
        await limiter.acquire("ci")


@pytest.mark.anyio
async def test_refused_calls_do_not_consume(clock: FakeClock) -> None:
    """Refused calls take nothing, so the wait does not grow while a client retries."""
    limiter = RateLimiter(rate=1, burst=1, clock=clock)
    await limiter.acquire("ci")
    for _ in range(5):
        with pytest.raises(RateLimited) as caught:
            await limiter.acquire("ci")
        assert caught.value.retry_after == pytest.approx(1.0)


@pytest.mark.anyio
async def test_keys_have_separate_buckets(clock: FakeClock) -> None:
    """One token's exhaustion does not limit another token."""
    limiter = RateLimiter(rate=1, burst=1, clock=clock)
    await limiter.acquire("a")
    with pytest.raises(RateLimited):
        await limiter.acquire("a")
    await limiter.acquire("b")


@pytest.mark.anyio
@pytest.mark.parametrize("rate", [pytest.param(0, id="zero"), pytest.param(-1, id="negative")])
async def test_rate_zero_disables(clock: FakeClock, rate: float) -> None:
    """Rate 0 (or below) never refuses a call."""
    limiter = RateLimiter(rate=rate, burst=1, clock=clock)
    await _drain(limiter, "ci", 10_000)


@pytest.mark.anyio
async def test_burst_below_one_still_allows_one_call(clock: FakeClock) -> None:
    """A burst of 0 is treated as 1, so a limited token can still make calls."""
    limiter = RateLimiter(rate=1, burst=0, clock=clock)
    assert limiter.burst == 1
    await limiter.acquire("ci")
    with pytest.raises(RateLimited):
        await limiter.acquire("ci")
