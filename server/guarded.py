"""The call guard applied once, at registration, rather than as a server interceptor.

`guarded(server, guard)` is the server as the generated add_*Servicer_to_server functions see
it: every handler they register reaches the real server (grpc.aio or the in-process channel)
already wrapped by `CallGuard.wrap`. A call then finds its guarded handler with the one lookup
grpc does anyway, where an interceptor costs two more coroutines and a partial on every call
(grpc's interceptor chain and intercept_service). What runs around the servicer is the same
wrapped handler either way: same auth, limits, errors, observer.

Everything registered on the port must come through here or through the interceptor, or it is
served unguarded: server.app registers the checkpoint and health services through it; only
reflection (stream-stream, open, which the guard leaves alone) is registered directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

import grpc

from server.guard import CallGuard

if TYPE_CHECKING:  # grpc's runtime classes are not generic; its stubs are
    _Handler = grpc.RpcMethodHandler[Any, Any]
    _Generic = grpc.GenericRpcHandler[Any, Any]


class Registry(Protocol):
    """What the generated add_*Servicer_to_server functions call on their server."""

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Iterable[_Generic]) -> None: ...

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, _Handler]
    ) -> None: ...


class _Guarded:
    def __init__(self, inner: Registry, guard: CallGuard) -> None:
        self._inner, self._guard = inner, guard

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Iterable[_Generic]) -> None:
        self._inner.add_generic_rpc_handlers(
            tuple(_GuardedHandler(handler, self._guard) for handler in generic_rpc_handlers)
        )

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, _Handler]
    ) -> None:
        self._inner.add_registered_method_handlers(
            service_name,
            {
                name: self._guard.wrap(f"/{service_name}/{name}", handler)
                for name, handler in method_handlers.items()
            },
        )


class _GuardedHandler(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    """A generic handler's answers, wrapped by the guard; found ones kept per method (only
    found ones: unknown names clients send do not grow it)."""

    def __init__(self, inner: _Generic, guard: CallGuard) -> None:
        self._inner, self._guard = inner, guard
        self._found: dict[str, _Handler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> _Handler | None:
        method: str = handler_call_details.method
        found = self._found.get(method)
        if found is not None:
            return found
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        found = self._found[method] = self._guard.wrap(method, handler)
        return found


def guarded(server: grpc.aio.Server, guard: CallGuard) -> grpc.aio.Server:
    """server, for add_*Servicer_to_server, with every handler registered through guard."""
    # grpc-stubs lacks add_registered_method_handlers, which grpcio's servers have.
    return cast(grpc.aio.Server, _Guarded(cast(Registry, server), guard))
