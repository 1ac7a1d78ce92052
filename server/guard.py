"""The one interceptor around every CheckpointService call: auth, rate limit, error translation.

Order: authenticate and authorize (server.auth), take from the token's bucket (server.ratelimit),
run the servicer, and turn any CheckpointError into its gRPC status. Anything unexpected answers
INTERNAL with a fixed message; the traceback goes to the log with the request id.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from server.auth import OPEN_PREFIXES, Authenticator
from server.call_observer import call_metadata, current_request_id, note_token, observed
from server.errors import CheckpointError, InvalidArgument
from server.metrics import ServerMetrics
from server.ratelimit import Limiter

log = logging.getLogger(__name__)

Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
StreamBehavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]
INTERNAL_MESSAGE = "internal error"


class _Undecodable:
    """Stands in for a request whose bytes do not parse, so it is refused as INVALID_ARGUMENT."""

    def __init__(self, error: DecodeError) -> None:
        self.error = error


class CallGuard(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(
        self, auth: Authenticator, limiter: Limiter, metrics: ServerMetrics | None = None
    ) -> None:
        self._auth, self._limiter, self._metrics = auth, limiter, metrics
        # A limiter that never waits (the local and the shared one) also has a plain `take`:
        # unary calls use it, which spares each of them a coroutine. Same buckets, same errors.
        self._take: Callable[[str], None] | None = getattr(limiter, "take", None)
        # One wrapped handler per method, built on first use (no per-call allocation of it).
        self._handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """As a server interceptor: the guarded handler, looked up on every call. The server
        of server.app applies the guard at registration instead (server.guarded), which
        spares each call this coroutine and grpc's interceptor chain."""
        method: str = handler_call_details.method
        cached = self._handlers.get(method)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        return self.wrap(method, handler)

    def wrap(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """handler with the guard and the observer around it, built once per method.

        Unary-unary methods are observed (span, request id, access line), and guarded unless
        open (health, reflection); unary-stream methods are guarded unless open; both are
        counted with --metrics-listen unless open; any other handler is returned as is.
        """
        cached = self._handlers.get(method)
        if cached is not None:
            return cached
        if handler.unary_unary is not None:
            behavior: Behavior
            series = None
            if method.startswith(OPEN_PREFIXES):  # no guard, but observed (span, access line)
                behavior, parse = handler.unary_unary, handler.request_deserializer  # type: ignore[assignment]
            else:
                behavior = self._guarded(method, handler.unary_unary)  # type: ignore[arg-type]
                if self._metrics is not None:  # outside the guard: refused calls are counted too
                    series = self._metrics.unary_series(method)
                parse = _tolerant(handler.request_deserializer)
            wrapped = grpc.unary_unary_rpc_method_handler(
                observed(method, behavior, series),
                request_deserializer=parse,
                response_serializer=handler.response_serializer,
            )
        elif handler.unary_stream is not None and not method.startswith(OPEN_PREFIXES):
            stream = self._guarded_stream(method, handler.unary_stream)  # type: ignore[arg-type]
            if self._metrics is not None:  # as for unary calls: refused streams are counted too
                stream = self._metrics.observe_stream(method, stream)
            wrapped = grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        else:
            wrapped = handler
        self._handlers[method] = wrapped
        return wrapped

    def _guarded(self, method: str, behavior: Behavior) -> Behavior:
        auth, limiter, take = self._auth, self._limiter, self._take

        async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            metadata = call_metadata(context)
            try:
                record = auth.authorize(
                    method, [str(v) for k, v in metadata if k == "authorization"]
                )
                note_token(record.name)
                if take is not None:
                    take(record.name)
                else:
                    await limiter.acquire(record.name)
                if isinstance(request, _Undecodable):
                    raise InvalidArgument(f"request message does not parse: {request.error}")
                return await behavior(request, context)
            except CheckpointError as err:
                status = err.to_rpc_status()
                await context.abort(status.code, status.details, status.trailing_metadata)
            except grpc.aio.AbortError:
                raise
            except Exception:
                request_id = current_request_id()
                log.exception("unexpected error in %s (request id %s)", method, request_id)
                await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)

        return guarded

    def _guarded_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        """The same checks once at the start of a stream (one token from the bucket per call);
        an error before or after the first message ends the stream with its status."""
        auth, limiter = self._auth, self._limiter

        async def guarded(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            metadata = context.invocation_metadata() or ()
            try:
                record = auth.authorize(
                    method, [str(v) for k, v in metadata if k == "authorization"]
                )
                await limiter.acquire(record.name)
                if isinstance(request, _Undecodable):
                    raise InvalidArgument(f"request message does not parse: {request.error}")
                async for response in behavior(request, context):
                    yield response
            except CheckpointError as err:
                status = err.to_rpc_status()
                await context.abort(status.code, status.details, status.trailing_metadata)
            except grpc.aio.AbortError:
                raise
            except Exception:
                request_id = next(
                    (str(v) for k, v in metadata if k == "x-request-id"), uuid.uuid4().hex
                )
                log.exception("unexpected error in %s (request id %s)", method, request_id)
                await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)

        return guarded


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def parse(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except DecodeError as exc:
            return _Undecodable(exc)

    return parse
