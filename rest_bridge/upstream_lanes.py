"""Several connections to one upstream, each call sent over the one with the fewest calls open.

A server with --workers N shares its port by SO_REUSEPORT: the kernel hands each TCP connection
to one worker by a hash of its addresses, and every call on a connection is served by that
worker. One connection per bridge worker therefore ties each bridge worker to one server worker
(both bridge workers on one, the other idle, happens half the time with two of each). Lanes holds
`--upstream-connections` channels, each on its own TCP connection (a local subchannel pool: grpc
would otherwise share one connection between channels of equal arguments), and sends each call
over the lane with the fewest calls still open, the least-outstanding rule of Envoy's
LEAST_REQUEST: a server worker that falls behind keeps its calls open longer, so its lanes get
fewer new ones. Ties go round-robin, so an idle bridge still uses every lane. A lane whose
connection is failing (TRANSIENT_FAILURE) counts as UNUSABLE calls more, so it gets calls only
when every lane fails: its calls would fail at once, keep its count low, and draw the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import grpc

UNUSABLE = 1 << 20
"""Added to a failing lane's count of open calls: more than any count of real calls."""

WATCHERS_GRACE = 1.0
"""Seconds close() waits for the lanes' watchers to see their channels shut down."""

LOCAL_POOL = ("grpc.use_local_subchannel_pool", 1)
"""Channel argument giving each channel its own subchannel, hence its own TCP connection."""

_DOWN = frozenset({grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN})
_RANK = {
    grpc.ChannelConnectivity.READY: 0,
    grpc.ChannelConnectivity.CONNECTING: 1,
    grpc.ChannelConnectivity.IDLE: 2,
    grpc.ChannelConnectivity.TRANSIENT_FAILURE: 3,
    grpc.ChannelConnectivity.SHUTDOWN: 4,
}
"""The lanes' state is their best one: READY while any lane can take calls."""


class Lanes:
    """count channels made by open, kept connected, and the open-call count of each."""

    def __init__(self, open_channel: Callable[[], grpc.aio.Channel], count: int) -> None:
        if count < 1:
            raise ValueError(f"--upstream-connections must be 1 or more, got {count}")
        self.channels = tuple(open_channel() for _ in range(count))
        self._load = [0] * count
        """Open calls of each lane (plus UNUSABLE while its connection fails)."""
        self._turn = 0
        self.done: tuple[Callable[[Any], None], ...] = tuple(
            self._finisher(index) for index in range(count)
        )
        """Per lane, the done-callback that ends one of its calls (made once, not per call)."""
        self._seen = [grpc.ChannelConnectivity.IDLE] * count
        loop = asyncio.get_running_loop()
        self._watchers = [loop.create_task(self._watch(index)) for index in range(count)]

    def pick(self) -> int:
        """The lane for a new call, counted open until its done-callback runs."""
        load = self._load
        low = min(load)
        turn = self._turn
        if load[turn] != low:
            turn = load.index(low)
        self._turn = turn + 1 if turn + 1 < len(load) else 0
        load[turn] += 1
        return turn

    def release(self, index: int) -> None:
        """A picked lane's call that could not be started."""
        self._load[index] -= 1

    def open_calls(self) -> list[int]:
        """The open calls of each lane (without the failing penalty): for tests and metrics."""
        return [load % UNUSABLE for load in self._load]

    def failing(self) -> list[bool]:
        """Whether each lane's connection is failing (it takes calls only if all are)."""
        return [load >= UNUSABLE for load in self._load]

    def _finisher(self, index: int) -> Callable[[Any], None]:
        load = self._load

        def finished(_call: Any) -> None:
            load[index] -= 1

        return finished

    async def _watch(self, index: int) -> None:
        """Keep the lane connected (an IDLE channel waits for a call to connect) and mark it
        UNUSABLE while its connection fails; ends when the channel is closed."""
        channel, failing = self.channels[index], False
        while True:
            state = channel.get_state(try_to_connect=True)
            if state == grpc.ChannelConnectivity.SHUTDOWN:
                return
            down = state in _DOWN
            if down != failing:
                self._load[index] += UNUSABLE if down else -UNUSABLE
                failing = down
            await channel.wait_for_state_change(state)

    # connectivity, as one channel's

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        """The best lane's state; each lane's is remembered for wait_for_state_change."""
        self._seen = [channel.get_state(try_to_connect) for channel in self.channels]
        return min(self._seen, key=_RANK.__getitem__)

    async def wait_for_state_change(self) -> None:
        """Until any lane's state differs from the one get_state saw last."""
        waiters = [
            asyncio.ensure_future(channel.wait_for_state_change(seen))
            for channel, seen in zip(self.channels, self._seen, strict=True)
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await _cancel(waiters)

    async def channel_ready(self) -> None:
        """Until any lane is READY (a call can be served)."""
        waiters = [asyncio.ensure_future(channel.channel_ready()) for channel in self.channels]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await _cancel(waiters)

    # life

    async def close(self, grace: float | None = None) -> None:
        """Close every lane (open calls get grace seconds), then wait for the watchers to see
        it: a watch left pending in grpc would complete after its event loop has ended."""
        await asyncio.gather(*(channel.close(grace) for channel in self.channels))
        _, late = await asyncio.wait(self._watchers, timeout=WATCHERS_GRACE)
        await _cancel(list(late))


async def _cancel(tasks: Sequence[asyncio.Future[Any]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.UsageError):
            await task
