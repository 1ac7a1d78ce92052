"""rest_bridge.upstream_lanes without a server: which lane a call is sent over.

Calls are counted open by pick() and closed by the lane's done-callback, as UpstreamChannel
does around every call; the lanes' channels point at a port that takes connections and never
answers (they stay CONNECTING: usable) or at one that refuses them (TRANSIENT_FAILURE).
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections import Counter
from collections.abc import Callable, Iterator

import grpc
import pytest

from rest_bridge.upstream_lanes import LOCAL_POOL, Lanes

pytestmark = pytest.mark.anyio


REFUSED = "127.0.0.1:9"


@pytest.fixture
def silent() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def _opener(*targets: str) -> Callable[[], grpc.aio.Channel]:
    cycle = itertools.cycle(targets)
    return lambda: grpc.aio.insecure_channel(next(cycle), options=(LOCAL_POOL,))


async def test_idle_lanes_take_turns_and_a_slow_one_gets_fewer(silent: str) -> None:
    """With no call open, calls go round the lanes; calls open long on one lane (its server
    worker is behind) send the next calls to the others until it catches up."""
    lanes = Lanes(_opener(silent), 3)
    try:
        picks = []
        for _ in range(6):
            index = lanes.pick()
            picks.append(index)
            lanes.done[index](None)
        assert picks == [0, 1, 2, 0, 1, 2]
        opened = [lanes.pick() for _ in range(9)]  # three calls open on each lane
        for index in opened:
            if index != 0:
                lanes.done[index](None)  # lanes 1 and 2 answer, lane 0 does not
        assert lanes.open_calls() == [3, 0, 0]
        following = Counter(lanes.pick() for _ in range(6))
        assert following == {1: 3, 2: 3}
        assert lanes.open_calls() == [3, 3, 3]
        assert lanes.pick() == 0  # all equal again: its turn
    finally:
        await lanes.close()


async def test_a_failing_lane_gets_no_calls_while_another_can_take_them(silent: str) -> None:
    """Calls over a refused connection fail at once and would keep its count lowest; it is
    marked UNUSABLE instead, so every call goes to the lane that can take it."""
    lanes = Lanes(_opener(REFUSED, silent), 2)
    try:
        for _ in range(100):
            await asyncio.sleep(0.01)
            if lanes.failing() == [True, False]:
                break
        assert lanes.failing() == [True, False]
        picks = []
        for _ in range(10):
            index = lanes.pick()
            picks.append(index)
            lanes.done[index](None)
        assert picks == [1] * 10
        assert lanes.get_state() == grpc.ChannelConnectivity.CONNECTING  # the best lane's
    finally:
        await lanes.close()


async def test_connections_under_one_are_refused() -> None:
    with pytest.raises(ValueError, match="--upstream-connections"):
        Lanes(_opener(REFUSED), 0)
