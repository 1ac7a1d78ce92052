"""Server-streaming calls through the in-process channel (server.local_channel.LocalChannel).

The same path as a unary call in-process: the registered handler behind the server's
interceptors, the caller's metadata as invocation metadata, every response serialized and
parsed again under the message size limit, the caller's timeout as the deadline, and aborts,
unexpected errors and missed deadlines as the AioRpcError a network client reads. The handler runs
in its own task, writing into a queue of one message (so a slow reader slows the handler, as
HTTP/2 flow control does); cancelling the call cancels that task at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc.aio import Metadata

from server.local_context import LocalContext, MetadataPairs, rpc_error, unexpected_error

log = logging.getLogger(__name__)

Find = Callable[[grpc.HandlerCallDetails], Awaitable[Any]]
EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]  # the stubs lack it


class _StreamContext(LocalContext):
    def __init__(self, metadata: MetadataPairs, deadline: float | None) -> None:
        super().__init__(metadata, deadline)
        self.headers: asyncio.Future[Metadata] = asyncio.get_running_loop().create_future()

    async def send_initial_metadata(self, initial_metadata: Any) -> None:
        if not self.headers.done():
            self.headers.set_result(Metadata(*tuple(initial_metadata or ())))


class _Details(grpc.HandlerCallDetails):
    __slots__ = ("invocation_metadata", "method")

    def __init__(self, method: str, metadata: MetadataPairs) -> None:
        self.method = method
        self.invocation_metadata = metadata


class LocalStreamCall(grpc.aio.UnaryStreamCall[Any, Any]):
    """One server-streaming call; it starts at once, like a network call."""

    def __init__(  # noqa: PLR0917 (what a call is made of)
        self,
        find: Find,
        method: str,
        raw: bytes,
        timeout: float | None,
        metadata: Any,
        deserialize: Callable[[bytes], Any] | None,
        max_message_bytes: int,
    ) -> None:
        self._find, self._method, self._limit = find, method, max_message_bytes
        self._deserialize = deserialize
        self._timeout = timeout
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._pairs: MetadataPairs = tuple(metadata) if metadata else ()
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)
        self._context = _StreamContext(self._pairs, self._deadline)
        self._code, self._details, self._trailing = grpc.StatusCode.OK, "", Metadata()
        self._task = asyncio.create_task(self._run(raw))

    async def _run(self, raw: bytes) -> None:
        outcome: grpc.aio.AioRpcError | None = None
        try:
            outcome = await self._produce(raw)
        except asyncio.CancelledError:
            self._code, self._details = grpc.StatusCode.CANCELLED, "Locally cancelled"
            raise
        finally:
            if not self._context.headers.done():
                self._context.headers.set_result(Metadata())
        if outcome is not None:
            self._code, self._details = outcome.code(), outcome.details() or ""
            self._trailing = outcome.trailing_metadata() or Metadata()  # type: ignore[assignment]
        await self._queue.put(outcome if outcome is not None else EOF)

    async def _produce(self, raw: bytes) -> grpc.aio.AioRpcError | None:
        seconds = self._timeout
        if seconds is not None and seconds <= 0:
            return rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        handler = await self._find(_Details(self._method, self._pairs))
        if handler is None or handler.unary_stream is None:
            return rpc_error(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        if len(raw) > self._limit:
            return rpc_error(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"SERVER: Received message larger than max ({len(raw)} vs. {self._limit})",
            )
        try:
            parse = handler.request_deserializer
            request = parse(raw) if parse is not None else raw
        except Exception:
            log.exception("cannot deserialize the request of %s", self._method)
            return rpc_error(grpc.StatusCode.INTERNAL, "Exception deserializing request!")
        serialize = handler.response_serializer
        scope = asyncio.timeout(seconds)
        try:
            async with scope:
                async for response in handler.unary_stream(request, self._context):
                    out: bytes = serialize(response) if serialize is not None else response
                    if len(out) > self._limit:
                        return rpc_error(
                            grpc.StatusCode.RESOURCE_EXHAUSTED,
                            f"SERVER: Sent message larger than max ({len(out)} vs. {self._limit})",
                        )
                    if not self._context.headers.done():
                        self._context.headers.set_result(Metadata())
                    parsed = self._deserialize(out) if self._deserialize is not None else out
                    await self._queue.put(parsed)
        except grpc.aio.AbortError:
            return self._context.failure() or rpc_error(
                grpc.StatusCode.UNKNOWN, "aborted without a status"
            )
        except TimeoutError as exc:
            if not scope.expired():
                return unexpected_error(self._method, exc)
        except Exception as exc:
            return unexpected_error(self._method, exc)
        if scope.expired():
            # What grpc's client reports for a deadline once the stream has begun.
            sent = self._context.headers.done()
            text = "Stream removed (Deadline Exceeded)" if sent else "Deadline Exceeded"
            return rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, text)
        return self._context.failure()

    # -- the reader's side ----------------------------------------------------------------------

    async def read(self) -> Any:
        item = await self._queue.get()
        if isinstance(item, grpc.aio.AioRpcError):
            raise item
        return item

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while True:
            item = await self.read()
            if item is EOF:
                return
            yield item

    async def initial_metadata(self) -> Any:
        return await asyncio.shield(self._context.headers)

    async def trailing_metadata(self) -> Any:
        await self._wait()
        return self._trailing

    async def code(self) -> grpc.StatusCode:
        await self._wait()
        return self._code

    async def details(self) -> str:
        await self._wait()
        return self._details

    async def _wait(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self._task)

    async def wait_for_connection(self) -> None:
        return None

    def cancel(self) -> bool:
        if self._task.done():
            return False
        self._task.cancel()
        return True

    def cancelled(self) -> bool:
        return self._code is grpc.StatusCode.CANCELLED

    def done(self) -> bool:
        return self._task.done()

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def add_done_callback(self, callback: Any) -> None:
        """callback(self) once the call has its status, as a network call does (the bridge's
        metrics count a stream's end this way)."""
        self._task.add_done_callback(lambda _: callback(self))


class LocalStreamMultiCallable(grpc.aio.UnaryStreamMultiCallable[Any, Any]):
    def __init__(
        self,
        find: Find,
        method: str,
        serialize: Callable[[Any], bytes] | None,
        deserialize: Callable[[bytes], Any] | None,
        max_message_bytes: int,
    ) -> None:
        self._find, self._method, self._limit = find, method, max_message_bytes
        self._serialize, self._deserialize = serialize, deserialize

    def __call__(  # noqa: PLR0917 (grpc.aio's signature)
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> grpc.aio.UnaryStreamCall[Any, Any]:
        raw = self._serialize(request) if self._serialize is not None else request
        return LocalStreamCall(
            self._find, self._method, raw, timeout, metadata, self._deserialize, self._limit
        )
