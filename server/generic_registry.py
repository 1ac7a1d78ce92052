"""The gRPC port's services as generic handlers only, none as grpc.aio registered methods.

grpc.aio keeps a pending request future per registered method and hands all of them to
`asyncio.wait` again for every call it accepts, so each registered method costs every call on
the port: the generated add_*Servicer_to_server functions register CheckpointService, health and
reflection's ten methods, ~35 000 instructions per GetCheckpoint (callgrind, README "The gRPC
call path against the no-op servicer"). The same functions also add each service as a generic
handler; with `generic_only(server)` in their way that is all the port gets, and the one generic
request future takes every call, found by the generic handlers' dictionary lookups. Clients see
no difference: registration is how grpc.aio asks for calls, not part of the wire protocol.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

import grpc

if TYPE_CHECKING:  # grpc's runtime classes are not generic; its stubs are
    _Handler = grpc.RpcMethodHandler[Any, Any]
    _Generic = grpc.GenericRpcHandler[Any, Any]


class _GenericOnly:
    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Iterable[_Generic]) -> None:
        self._server.add_generic_rpc_handlers(tuple(generic_rpc_handlers))

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, _Handler]
    ) -> None:
        # A service added this way alone (not by generated code) is still served.
        handler = grpc.method_handlers_generic_handler(service_name, dict(method_handlers))
        self._server.add_generic_rpc_handlers((handler,))


def generic_only(server: grpc.aio.Server) -> grpc.aio.Server:
    """server, for add_*Servicer_to_server, with every method added as a generic handler."""
    return cast(grpc.aio.Server, _GenericOnly(server))
