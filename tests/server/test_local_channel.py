"""server.local_channel.LocalChannel answers what a grpc.aio server and channel answer.

The same handlers and interceptor are served by a real grpc.aio server on 127.0.0.1 and by a
LocalChannel; every call is made through both and the outcomes (response, or code, details and
custom trailing metadata) must be equal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from server.local_channel import LocalChannel
from tests.server.network_twin import both_ways

MAX_MESSAGE = 100
Outcome = tuple[str, object, object, object]


async def _echo(request: bytes, context: Any) -> bytes:
    return request[::-1]


async def _abort(request: bytes, context: Any) -> bytes:
    await context.abort(grpc.StatusCode.NOT_FOUND, "nope", (("x-detail-bin", b"\x01\x02"),))
    raise AssertionError("abort returned")


async def _set_code(request: bytes, context: Any) -> bytes:
    context.set_code(grpc.StatusCode.FAILED_PRECONDITION)
    context.set_details("not now")
    return b""


async def _boom(request: bytes, context: Any) -> bytes:
    raise ValueError("bad thing")


async def _slow(request: bytes, context: Any) -> bytes:
    await asyncio.sleep(5)
    return b"late"


async def _trailers(request: bytes, context: Any) -> bytes:
    context.set_trailing_metadata((("x-replayed", "true"),))
    return b"t"


async def _metadata(request: bytes, context: Any) -> bytes:
    pairs = context.invocation_metadata() or ()
    return repr([(k, v) for k, v in pairs if k.startswith("x-")]).encode()


_BEHAVIORS: dict[str, Callable[[bytes, Any], Awaitable[bytes]]] = {
    "Echo": _echo,
    "Abort": _abort,
    "SetCode": _set_code,
    "Boom": _boom,
    "Slow": _slow,
    "Metadata": _metadata,
    "Trailers": _trailers,
    "Refused": _echo,
}


class _Refuse(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Answers PERMISSION_DENIED for /t.S/Refused, as the call guard would."""

    async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        if handler_call_details.method != "/t.S/Refused":
            return handler

        async def refuse(request: bytes, context: Any) -> bytes:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not you")
            raise AssertionError("abort returned")

        return grpc.unary_unary_rpc_method_handler(refuse)


def _generic() -> grpc.GenericRpcHandler:  # type: ignore[type-arg]
    return grpc.method_handlers_generic_handler(
        "t.S",
        {name: grpc.unary_unary_rpc_method_handler(fn) for name, fn in _BEHAVIORS.items()},
    )


CALLS: list[tuple[str, bytes, float | None]] = [
    ("Echo", b"abc", 5.0),
    ("Echo", b"", None),
    ("Abort", b"", 5.0),
    ("SetCode", b"", 5.0),
    ("Boom", b"", 5.0),
    ("Slow", b"", 0.2),
    ("Nothing", b"", 5.0),
    ("Refused", b"x", 5.0),
    ("Metadata", b"", 5.0),
    ("Trailers", b"", 5.0),
    ("Echo", b"x" * (MAX_MESSAGE + 1), 5.0),
]


async def _outcome(
    channel: grpc.aio.Channel, method: str, body: bytes, seconds: float | None
) -> Outcome:
    multicallable = channel.unary_unary(f"/t.S/{method}", None, None)
    metadata = (("x-request-id", "r1"), ("x-other", "v"))
    call = multicallable(body, timeout=seconds, metadata=metadata)
    try:
        reply = await call
    except grpc.aio.AioRpcError as err:
        pairs: Any = err.trailing_metadata() or ()
        trailing = [(k, v) for k, v in pairs if k.startswith("x-")]
        return ("error", err.code(), err.details(), trailing)
    # Success trailers cross too (the servicer's idempotent-replayed marker rides on them).
    pairs = await call.trailing_metadata() or ()
    return ("ok", reply, None, [(k, v) for k, v in pairs if k.startswith("x-")])


@pytest.fixture(scope="module")
def outcomes() -> tuple[list[Outcome], list[Outcome]]:
    return asyncio.run(both_ways(_Refuse, _generic, MAX_MESSAGE, CALLS, _outcome))


@pytest.mark.parametrize("index", range(len(CALLS)), ids=[f"{c[0]}-{len(c[1])}" for c in CALLS])
def test_local_call_answers_as_the_network(
    outcomes: tuple[list[Outcome], list[Outcome]], index: int
) -> None:
    remote, here = outcomes
    assert here[index] == remote[index]


def test_a_concurrency_limit_refuses_with_resource_exhausted() -> None:
    async def scenario() -> list[object]:
        local = LocalChannel(max_concurrent_rpcs=1)
        local.add_generic_rpc_handlers((_generic(),))
        slow = asyncio.ensure_future(_outcome(local, "Slow", b"", 0.2))
        await asyncio.sleep(0.05)
        refused = await _outcome(local, "Echo", b"a", 1.0)
        return [refused[1], (await slow)[1], (await _outcome(local, "Echo", b"a", 1.0))[0]]

    assert asyncio.run(scenario()) == [
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "ok",
    ]


def test_the_call_reports_its_status_after_it_is_awaited() -> None:
    async def scenario() -> tuple[object, object]:
        local = LocalChannel()
        local.add_generic_rpc_handlers((_generic(),))
        call = local.unary_unary("/t.S/Abort")(b"", timeout=1.0)
        with pytest.raises(grpc.aio.AioRpcError):
            await call
        return await call.code(), await call.details()

    assert asyncio.run(scenario()) == (grpc.StatusCode.NOT_FOUND, "nope")
