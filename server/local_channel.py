"""An in-process grpc.aio.Channel: calls reach the servicer without a network hop.

`checkpoint-server serve --rest-listen HOST:PORT` serves the REST bridge from the server's own
process (composed in server.__main__). The bridge talks to any grpc.aio.Channel; this one's calls
never touch the network, yet go through what a call off the wire goes through in grpc's aio server:

- the handler is the one registered for the method: the generated add_*Servicer_to_server
  functions register the same servicers on the real server and on this channel;
- the server's guard (server.guard.CallGuard: auth, rate limit, error translation) runs around
  it, applied at registration as on the port (server.guarded) or as interceptors passed here,
  with the caller's metadata as the invocation metadata, and shares its state (one rate-limit
  bucket per token, whichever door a call comes through);
- request and response cross as bytes through the real serializers, under the server's message
  size limit;
- the caller's timeout is the deadline (asyncio.timeout); an abort, a status set on the context,
  an unexpected exception, an unknown method or a missed deadline become the grpc.aio.AioRpcError
  that a network client would see: same code, details and trailing metadata (rich status).

So a REST call answers exactly what it answers through a separate bridge process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import grpc
from grpc.aio import Metadata

from server.local_context import LocalContext, MetadataPairs, rpc_error, unexpected_error
from server.local_stream import LocalStreamMultiCallable

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # grpc's runtime classes are not generic; its stubs are
    _Handler = grpc.RpcMethodHandler[Any, Any]
    _Lookup = Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]]


class _CallDetails(grpc.HandlerCallDetails):
    """What interceptors and generic handlers are told about a call."""

    __slots__ = ("invocation_metadata", "method")

    def __init__(self, method: str, metadata: MetadataPairs) -> None:
        self.method = method
        self.invocation_metadata = metadata


class LocalChannel(grpc.aio.Channel):
    """A grpc.aio.Channel whose unary calls run the registered handlers in this process.

    It also plays the server's part for registration: pass it to add_*Servicer_to_server.
    Unary-unary and unary-stream methods are carried; client streaming raises
    NotImplementedError.
    """

    def __init__(
        self,
        interceptors: Sequence[grpc.aio.ServerInterceptor[Any, Any]] = (),
        *,
        max_message_bytes: int = 4 << 20,
        max_concurrent_rpcs: int | None = None,
    ) -> None:
        self._generic: list[grpc.GenericRpcHandler[Any, Any]] = []
        self._registered: dict[str, _Handler] = {}
        self.max_message_bytes = max_message_bytes
        self.max_concurrent_rpcs = max_concurrent_rpcs
        """Calls run at once through this channel (its own count, beside the gRPC port's);
        more are refused with RESOURCE_EXHAUSTED, as grpcio's maximum_concurrent_rpcs does."""
        self._in_flight = 0
        self._find = self._chain(tuple(interceptors))

    # -- registration (the server's side) -------------------------------------------------------

    def as_server(self) -> grpc.aio.Server:
        """This channel as the `server` of the generated add_*Servicer_to_server functions, which
        call only add_generic_rpc_handlers and add_registered_method_handlers."""
        return cast(grpc.aio.Server, self)

    def add_generic_rpc_handlers(
        self, handlers: Iterable[grpc.GenericRpcHandler[Any, Any]]
    ) -> None:
        self._generic.extend(handlers)

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, _Handler]
    ) -> None:
        for name, handler in method_handlers.items():
            self._registered[f"/{service_name}/{name}"] = handler

    def _chain(self, interceptors: tuple[grpc.aio.ServerInterceptor[Any, Any], ...]) -> _Lookup:
        """The handler lookup wrapped by the interceptors, the first one outermost (as grpc)."""

        async def query(details: grpc.HandlerCallDetails) -> _Handler | None:
            method: str = details.method
            found = self._registered.get(method)
            if found is not None:
                return found
            for generic in self._generic:
                found = generic.service(details)
                if found is not None:
                    return found
            return None

        lookup: _Lookup = query
        for interceptor in reversed(interceptors):
            lookup = _wrap(interceptor, lookup)
        return lookup

    # -- calls (the client's side) --------------------------------------------------------------

    def unary_unary(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        return _LocalMultiCallable(self, method, request_serializer, response_deserializer)

    async def call(
        self,
        method: str,
        raw: bytes,
        seconds: float | None,
        metadata: Any,
        initial: list[tuple[str, str | bytes]] | None = None,
    ) -> tuple[bytes, MetadataPairs]:
        """Run one unary call on serialized bytes; the response's bytes and trailing metadata,
        or an AioRpcError. The initial metadata the handler sent is appended to initial, when
        given.

        Raises:
            grpc.aio.AioRpcError: the status a network client would have received.
        """
        if seconds is not None and seconds <= 0:  # a network client fails before sending
            raise rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        limit = self.max_concurrent_rpcs
        if limit is not None and self._in_flight >= limit:
            raise rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "Concurrent RPC limit exceeded!")
        self._in_flight += 1
        try:
            return await self._call(method, raw, seconds, metadata, initial)
        finally:
            self._in_flight -= 1

    async def _call(
        self,
        method: str,
        raw: bytes,
        seconds: float | None,
        metadata: Any,
        initial: list[tuple[str, str | bytes]] | None,
    ) -> tuple[bytes, MetadataPairs]:
        pairs: MetadataPairs = tuple(metadata) if metadata else ()
        handler = await self._find(_CallDetails(method, pairs))
        if handler is None or handler.unary_unary is None:
            raise rpc_error(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        limit = self.max_message_bytes
        if len(raw) > limit:
            raise rpc_error(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"SERVER: Received message larger than max ({len(raw)} vs. {limit})",
            )
        try:
            parse = handler.request_deserializer
            request = parse(raw) if parse is not None else raw
        except Exception as exc:
            log.exception("cannot deserialize the request of %s", method)
            raise rpc_error(grpc.StatusCode.INTERNAL, "Exception deserializing request!") from exc
        deadline = None if seconds is None else time.monotonic() + seconds
        context = LocalContext(pairs, deadline)
        behavior: Callable[[Any, LocalContext], Awaitable[Any]] = handler.unary_unary  # type: ignore[assignment]
        scope = asyncio.timeout(seconds)
        outcome: grpc.aio.AioRpcError | None = None
        try:
            async with scope:
                response = await behavior(request, context)
        except grpc.aio.AbortError:
            outcome = context.failure() or rpc_error(
                grpc.StatusCode.UNKNOWN, "aborted without a status"
            )
        except TimeoutError as exc:
            if not scope.expired():
                outcome = unexpected_error(method, exc)
        except Exception as exc:
            outcome = unexpected_error(method, exc)
        # Like a network client's timer, the deadline interrupts a call at an await; an answer
        # made before the loop got back to the timer is delivered (grpc delivers it too).
        if scope.expired():
            raise rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        if outcome is not None:
            raise outcome
        failure = context.failure()
        if failure is not None:
            raise failure
        if initial is not None:
            initial.extend(context.initial_metadata)
        serialize = handler.response_serializer
        try:
            out: bytes = serialize(response) if serialize is not None else response
        except Exception as exc:
            log.exception("cannot serialize the response of %s", method)
            raise rpc_error(grpc.StatusCode.INTERNAL, "Failed to serialize response!") from exc
        if len(out) > limit:
            raise rpc_error(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"Sent message larger than max ({len(out)} vs. {limit})",
            )
        return out, tuple(context.trailing_metadata())

    # -- channel life: nothing to connect, always ready -----------------------------------------

    async def __aenter__(self) -> LocalChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self, grace: float | None = None) -> None:
        return None

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return grpc.ChannelConnectivity.READY

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await asyncio.Event().wait()  # the state never changes

    async def channel_ready(self) -> None:
        return None

    def unary_stream(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.aio.UnaryStreamMultiCallable[Any, Any]:
        """Server streaming, the same way (server.local_stream)."""
        return LocalStreamMultiCallable(
            self._find, method, request_serializer, response_deserializer, self.max_message_bytes
        )

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("LocalChannel carries no client streaming")

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("LocalChannel carries no client streaming")


def _wrap(interceptor: grpc.aio.ServerInterceptor[Any, Any], inner: _Lookup) -> _Lookup:
    async def lookup(details: grpc.HandlerCallDetails) -> _Handler | None:
        return await interceptor.intercept_service(inner, details)  # type: ignore[arg-type]

    return lookup


class _LocalMultiCallable(grpc.aio.UnaryUnaryMultiCallable[Any, Any]):
    def __init__(
        self,
        channel: LocalChannel,
        method: str,
        serialize: Callable[[Any], bytes] | None,
        deserialize: Callable[[bytes], Any] | None,
    ) -> None:
        self._channel, self._method = channel, method
        self._serialize, self._deserialize = serialize, deserialize

    def __call__(  # noqa: PLR0917 (grpc.aio's signature)
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Metadata | Sequence[tuple[str, str | bytes]] | None = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> grpc.aio.UnaryUnaryCall[Any, Any]:
        return _LocalCall(self, request, timeout, metadata)

    async def invoke(
        self,
        request: Any,
        seconds: float | None,
        metadata: Any,
        initial: list[tuple[str, str | bytes]],
    ) -> tuple[Any, MetadataPairs]:
        raw = self._serialize(request) if self._serialize is not None else request
        out, trailing = await self._channel.call(self._method, raw, seconds, metadata, initial)
        return (self._deserialize(out) if self._deserialize is not None else out), trailing


class _LocalCall(grpc.aio.UnaryUnaryCall[Any, Any]):
    """One call; it runs when awaited (once), and its status can be read after that."""

    def __init__(
        self, callable_: _LocalMultiCallable, request: Any, timeout: float | None, metadata: Any
    ) -> None:
        self._callable, self._request = callable_, request
        self._timeout, self._metadata = timeout, metadata
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._started = self._done = False
        self._finished: asyncio.Event | None = None
        self._code = grpc.StatusCode.OK
        self._details = ""
        self._trailing = Metadata()
        self._initial: list[tuple[str, str | bytes]] = []

    def __await__(self) -> Generator[Any, None, Any]:
        if self._started:
            raise grpc.aio.UsageError("an in-process call can be awaited once")
        self._started = True
        try:
            response, trailing = yield from self._callable.invoke(
                self._request, self._timeout, self._metadata, self._initial
            ).__await__()
            self._trailing = Metadata(*trailing)
            return response
        except grpc.aio.AioRpcError as err:
            self._code, self._details = err.code(), err.details() or ""
            self._initial = list(err.initial_metadata() or ())
            self._trailing = cast(Metadata, err.trailing_metadata()) or Metadata()
            raise
        except asyncio.CancelledError:
            self._code, self._details = grpc.StatusCode.CANCELLED, "Locally cancelled"
            raise
        finally:
            self._done, self._request = True, None
            if self._finished is not None:
                self._finished.set()

    async def _wait(self) -> None:
        if not self._started:
            raise grpc.aio.UsageError("await the call first: an in-process call runs when awaited")
        if not self._done:
            if self._finished is None:
                self._finished = asyncio.Event()
            await self._finished.wait()

    async def initial_metadata(self) -> Any:
        await self._wait()
        return Metadata(*self._initial)

    async def trailing_metadata(self) -> Any:
        await self._wait()
        return self._trailing

    async def code(self) -> grpc.StatusCode:
        await self._wait()
        return self._code

    async def details(self) -> str:
        await self._wait()
        return self._details

    async def wait_for_connection(self) -> None:
        return None

    def cancelled(self) -> bool:
        return self._code is grpc.StatusCode.CANCELLED

    def done(self) -> bool:
        return self._done

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def cancel(self) -> bool:
        return False  # it runs in the awaiting task: cancel that task instead

    def add_done_callback(self, callback: Any) -> None:
        raise grpc.aio.UsageError("done callbacks are not supported in-process")
