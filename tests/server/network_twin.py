"""The same handlers served by a real grpc.aio server on 127.0.0.1 and by a LocalChannel, and
each call made through both: the in-process tests compare what the two answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc

from server.local_channel import LocalChannel

T = TypeVar("T")
Call = tuple[str, bytes, float | None]
"""Method name, request body, timeout in seconds."""


async def both_ways(
    interceptor: Callable[[], grpc.aio.ServerInterceptor[Any, Any]],
    handlers: Callable[[], grpc.GenericRpcHandler[Any, Any]],
    max_message: int,
    calls: Sequence[Call],
    outcome: Callable[[Any, str, bytes, float | None], Awaitable[T]],
) -> tuple[list[T], list[T]]:
    """The outcome of every call over the network, then in-process, under the same
    interceptor, handlers and message size limit both ways."""
    options = [
        ("grpc.max_receive_message_length", max_message),
        ("grpc.max_send_message_length", max_message),
    ]
    server = grpc.aio.server(interceptors=[interceptor()], options=options)
    server.add_generic_rpc_handlers((handlers(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    local = LocalChannel([interceptor()], max_message_bytes=max_message)
    local.add_generic_rpc_handlers((handlers(),))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as network:
            remote = [await outcome(network, *call) for call in calls]
        here = [await outcome(local, *call) for call in calls]
    finally:
        await server.stop(0)
    return remote, here
