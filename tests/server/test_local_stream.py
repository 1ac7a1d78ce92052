"""LocalChannel.unary_stream answers what a grpc.aio server and channel answer, message by message.

The same streaming handlers and interceptor are served by a real grpc.aio server on 127.0.0.1 and
by a LocalChannel; each call's messages and final status (code, details, custom trailing
metadata) must be equal. Cancelling a local call cancels its handler at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from server.local_channel import LocalChannel
from tests.server.network_twin import both_ways

MAX_MESSAGE = 100
Outcome = tuple[list[bytes], object, object, object]


async def _count(request: bytes, context: Any) -> AsyncIterator[bytes]:
    for i in range(3):
        yield request + str(i).encode()


async def _abort_after_one(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield b"one"
    await context.abort(grpc.StatusCode.NOT_FOUND, "gone", (("x-detail-bin", b"\x01"),))


async def _boom(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield b"one"
    raise ValueError("bad thing")


async def _slow(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield b"one"
    await asyncio.sleep(5)


async def _large(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield b"small"
    yield b"x" * (MAX_MESSAGE + 1)


async def _empty(request: bytes, context: Any) -> AsyncIterator[bytes]:
    return
    yield b""  # an async generator that yields nothing


_BEHAVIORS: dict[str, Callable[[bytes, Any], AsyncIterator[bytes]]] = {
    "Count": _count,
    "AbortAfterOne": _abort_after_one,
    "Boom": _boom,
    "Slow": _slow,
    "Large": _large,
    "Empty": _empty,
    "Refused": _count,
}


class _Refuse(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Answers PERMISSION_DENIED for /t.S/Refused before any message, as the call guard would."""

    async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        if handler_call_details.method != "/t.S/Refused":
            return handler

        async def refuse(request: bytes, context: Any) -> AsyncIterator[bytes]:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not you")
            yield b""

        return grpc.unary_stream_rpc_method_handler(refuse)


def _generic() -> grpc.GenericRpcHandler:  # type: ignore[type-arg]
    return grpc.method_handlers_generic_handler(
        "t.S",
        {name: grpc.unary_stream_rpc_method_handler(fn) for name, fn in _BEHAVIORS.items()},
    )


CALLS: list[tuple[str, bytes, float | None]] = [
    ("Count", b"n", 5.0),
    ("Count", b"n", None),
    ("AbortAfterOne", b"", 5.0),
    ("Boom", b"", 5.0),
    ("Slow", b"", 1.5),  # long enough for the first message on a loaded machine
    ("Large", b"", 5.0),
    ("Empty", b"", 5.0),
    ("Refused", b"", 5.0),
    ("Nothing", b"", 5.0),
    ("Count", b"x" * (MAX_MESSAGE + 1), 5.0),
]


async def _outcome(
    channel: grpc.aio.Channel, method: str, body: bytes, seconds: float | None
) -> Outcome:
    call = channel.unary_stream(f"/t.S/{method}", None, None)(body, timeout=seconds)
    received: list[bytes] = []
    try:
        async for message in call:
            received.append(message)
    except grpc.aio.AioRpcError as err:
        pairs: Any = err.trailing_metadata() or ()
        trailing = [(k, v) for k, v in pairs if k.startswith("x-")]
        return (received, err.code(), err.details(), trailing)
    return (received, await call.code(), None, None)


@pytest.fixture(scope="module")
def outcomes() -> tuple[list[Outcome], list[Outcome]]:
    """Every call of CALLS through the network and in-process."""
    return asyncio.run(both_ways(_Refuse, _generic, MAX_MESSAGE, CALLS, _outcome))


@pytest.mark.parametrize("index", range(len(CALLS)), ids=[f"{c[0]}-{len(c[1])}" for c in CALLS])
def test_local_stream_answers_as_the_network(
    outcomes: tuple[list[Outcome], list[Outcome]], index: int
) -> None:
    """The same messages, then the same status, as a network call."""
    remote, here = outcomes
    assert here[index] == remote[index]


def test_cancelling_a_local_stream_cancels_its_handler() -> None:
    """cancel() reaches the handler at once, and the call reports CANCELLED."""

    async def scenario() -> tuple[bool, object]:
        cancelled = asyncio.Event()

        async def hold(request: bytes, context: Any) -> AsyncIterator[bytes]:
            yield b"one"
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        local = LocalChannel()
        local.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "t.S", {"Hold": grpc.unary_stream_rpc_method_handler(hold)}
                ),
            )
        )
        call = local.unary_stream("/t.S/Hold")(b"")
        assert await call.read() == b"one"
        await asyncio.sleep(0.05)
        call.cancel()
        await asyncio.wait_for(cancelled.wait(), 1)
        return call.cancelled(), await call.code()

    assert asyncio.run(scenario()) == (True, grpc.StatusCode.CANCELLED)


def test_a_local_streams_done_callback_gets_the_call_once_it_has_its_status() -> None:
    """add_done_callback, as on a network call: not called while the stream is open, then once
    with the call, whose code is final (a completed stream and a cancelled one)."""

    async def scenario() -> list[object]:
        local = LocalChannel()
        local.add_generic_rpc_handlers((_generic(),))
        seen: list[object] = []
        finished = local.unary_stream("/t.S/Count")(b"n")
        finished.add_done_callback(lambda call: seen.append(("count", call is finished)))
        held = local.unary_stream("/t.S/Slow")(b"")
        held.add_done_callback(lambda call: seen.append(("slow", call.cancelled())))
        assert [m async for m in finished] == [b"n0", b"n1", b"n2"]
        assert await held.read() == b"one"
        await asyncio.sleep(0.05)
        open_then = list(seen)
        held.cancel()
        await asyncio.sleep(0.05)
        return [open_then, seen, await finished.code()]

    open_then, seen, code = asyncio.run(scenario())
    assert open_then == [("count", True)]
    assert seen == [("count", True), ("slow", True)]
    assert code is grpc.StatusCode.OK
