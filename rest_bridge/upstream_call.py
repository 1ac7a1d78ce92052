"""An upstream call seen through an observer (a span, a metric) that is still a call.

grpc.aio's unary call is awaited for its reply and asked afterwards for its trailing metadata
(the idempotency replay marker travels there). Wrappers that time or trace the call must keep
both: awaiting an ObservedCall runs the observer's coroutine, which awaits the call itself,
and the metadata questions go to the call underneath.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, Protocol


class Call(Protocol):
    """What the transcoder needs of an upstream unary call (grpc.aio's UnaryUnaryCall has it)."""

    def __await__(self) -> Generator[Any, None, Any]: ...

    async def trailing_metadata(self) -> Any: ...


UnaryCall = Callable[..., Call]
"""A unary multicallable: the channel's, or one wrapped to be traced or measured."""


class ObservedCall:
    __slots__ = ("_call", "_run")

    def __init__(self, call: Any, run: Awaitable[Any]) -> None:
        self._call, self._run = call, run

    def __await__(self) -> Generator[Any, None, Any]:
        return self._run.__await__()

    async def trailing_metadata(self) -> Any:
        return await self._call.trailing_metadata()

    async def initial_metadata(self) -> Any:
        return await self._call.initial_metadata()
