"""rest_bridge.http2_writes: answers finishing in one turn leave in one write, in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from uvicorn.server import ServerState

from rest_bridge.edge_io import EdgeLimits, Gate
from rest_bridge.http2 import Http2Protocol
from rest_bridge.http2_writes import Writes
from tests.http2_wire import Blocks, Transport, client_start, frame

pytestmark = pytest.mark.anyio


class Counting(Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))
        super().write(data)


async def test_gathered_bytes_wait_for_the_end_of_the_turn_and_keep_their_order() -> None:
    transport = Counting()
    writes = Writes(asyncio.get_running_loop())
    writes.transport = transport
    writes.write(b"a", gather=False)
    assert transport.writes == [b"a"]  # nothing gathered: at once
    writes.write(b"b", gather=True)
    writes.write(b"c", gather=False)  # after b, not before it
    assert transport.writes == [b"a"]
    await asyncio.sleep(0)
    assert transport.writes == [b"a", b"bc"]


async def test_what_is_gathered_goes_out_before_the_connection_closes() -> None:
    transport = Counting()
    writes = Writes(asyncio.get_running_loop())
    writes.transport = transport
    writes.write(b"goaway", gather=True)
    writes.flush()
    transport.close()
    await asyncio.sleep(0)
    assert transport.writes == [b"goaway"]


async def instant(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope["path"].encode()})


class Recording(Writes):
    __slots__ = ("gathered",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.gathered: list[bool] = []

    def write(self, data: bytes, gather: bool) -> None:
        self.gathered.append(gather)
        super().write(data, gather)


async def answers(requests: int) -> tuple[list[bytes], list[bool]]:
    """The writes after the preface's of a connection sent `requests` GETs in one read, and
    whether each was asked to be gathered."""
    slot = Gate(1).take()
    if slot is None:
        raise RuntimeError("no slot")
    loop = asyncio.get_running_loop()
    protocol = Http2Protocol(instant, ServerState(), EdgeLimits(), slot, loop.time() + 60)
    transport = Counting()
    protocol.writes = recording = Recording(loop)
    protocol.connection_made(transport)
    protocol.data_received(client_start())
    blocks = Blocks()
    second = b"".join(frame(0x1, 0x5, 2 * i + 1, blocks.request(f"/r{i}")) for i in range(requests))
    transport.writes.clear()
    recording.gathered.clear()
    protocol.data_received(second)
    for _ in range(10):
        await asyncio.sleep(0)
    protocol.connection_lost(None)
    return transport.writes, recording.gathered


async def test_answers_of_a_multiplexing_client_leave_in_one_write() -> None:
    writes, gathered = await answers(8)
    assert len(writes) == 1
    assert all(f"/r{i}".encode() in writes[0] for i in range(8))
    assert gathered[0]


async def test_the_one_answer_of_a_lone_stream_is_not_held() -> None:
    writes, gathered = await answers(1)
    assert gathered == [False]  # written at once, in the turn that answered
    assert len(writes) == 1
    assert b"/r0" in writes[0]
