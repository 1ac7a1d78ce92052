"""server.changefeed against a scripted in-memory history: the paths a real store rarely takes.

A slow subscription that falls more than MAX_PENDING behind, a feed that finds the history purged
past it, a store that fails for a moment: each must still deliver every change once, in order,
or end with the error that says why. Real stores are covered by test_store_changes.py and the
end-to-end watch tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from server import changefeed
from server.changefeed import ChangeFeed
from server.errors import OutOfRange, Unavailable
from server.store import ChangeKind, ChangeRecord
from tests.server.test_store import make

pytestmark = pytest.mark.anyio

CHECKPOINT = make("feed")


class History:
    """changes_after over a list; `purged` refuses positions below it; `failures` fail first."""

    def __init__(self) -> None:
        self.records: list[ChangeRecord] = []
        self.purged = 0
        self.failures: list[Exception] = []
        self.woken = asyncio.Event()

    def add(self, count: int) -> None:
        start = len(self.records)
        for seq in range(start + 1, start + count + 1):
            self.records.append(ChangeRecord(seq, ChangeKind.UPDATED, CHECKPOINT))
        self.woken.set()

    async def changes_after(self, after: int, limit: int) -> list[ChangeRecord]:
        if self.failures:
            raise self.failures.pop(0)
        if after < self.purged:
            raise OutOfRange("purged")
        return [r for r in self.records if r.seq > after][:limit]

    async def snapshot(self, state: object, checkpoint_id: object) -> tuple[int, list[object]]:
        return len(self.records), []

    async def wait_for_change(self) -> None:
        try:
            await asyncio.wait_for(self.woken.wait(), 0.01)
        except TimeoutError:
            return
        self.woken.clear()


async def _take(stream: AsyncIterator[ChangeRecord], count: int) -> list[int]:
    return [(await asyncio.wait_for(anext(stream), 2)).seq for _ in range(count)]


async def test_a_subscription_far_behind_catches_up_from_the_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """More than MAX_PENDING unread changes drop to a catch-up read: nothing lost or repeated."""
    monkeypatch.setattr(changefeed, "MAX_PENDING", 5)
    monkeypatch.setattr(changefeed, "BATCH", 4)
    history = History()
    feed = ChangeFeed(history)  # type: ignore[arg-type]
    sub = feed.subscribe(0)
    stream = feed.changes(sub)
    history.add(2)
    assert await _take(stream, 2) == [1, 2]
    history.add(20)  # read by the feed in batches of 4 while nobody reads the subscription
    await asyncio.sleep(0.1)
    assert sub.behind
    assert await _take(stream, 20) == list(range(3, 23))
    assert len(feed) == 1
    feed.unsubscribe(sub)
    await feed.close()


async def test_a_purge_past_the_feed_makes_each_subscription_catch_up_or_fail() -> None:
    """A feed that finds its position purged restarts at the newest; a subscription behind the
    purge ends with OUT_OF_RANGE."""
    history = History()
    history.add(3)
    feed = ChangeFeed(history)  # type: ignore[arg-type]
    sub = feed.subscribe(0)
    stream = feed.changes(sub)
    assert await _take(stream, 3) == [1, 2, 3]
    history.purged = 10
    history.add(12)
    with pytest.raises(OutOfRange):
        await _take(stream, 1)
    fresh = feed.subscribe(15)
    history.add(1)
    assert await _take(feed.changes(fresh), 1) == [16]
    await feed.close()


async def test_store_failures_are_retried_and_close_ends_every_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The feed outlives a store error and an unexpected one; close ends streams UNAVAILABLE."""
    monkeypatch.setattr(changefeed, "_RETRY_SECONDS", 0.01)
    history = History()
    feed = ChangeFeed(history)  # type: ignore[arg-type]
    sub = feed.subscribe(0)
    stream = feed.changes(sub)
    history.add(1)
    assert await _take(stream, 1) == [1]
    history.failures = [Unavailable("down"), RuntimeError("bug")]
    history.add(1)
    assert await _take(stream, 1) == [2]
    await feed.close()
    with pytest.raises(Unavailable, match="shutting down"):
        await _take(stream, 1)
    with pytest.raises(Unavailable):
        feed.subscribe(0)
