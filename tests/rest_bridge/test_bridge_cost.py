"""bench.bridge_cost times a real answer: the app over its instant channel answers 200 with the
checkpoint's envelope, so the figure it prints is the cost of a successful GET."""

from __future__ import annotations

import asyncio
import json

from bench.bridge_cost import CHECKPOINT_ID, per_request


def test_the_timed_request_is_a_successful_get() -> None:
    seconds, body = asyncio.run(per_request(requests=20, repeat=1))
    data = json.loads(body)["data"]
    assert data["id"] == CHECKPOINT_ID
    assert data["create_time"] == "2023-11-14T22:13:20.123Z"
    assert 0 < seconds < 1
