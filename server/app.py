"""Assemble the gRPC server: servicer, health, reflection and the call guard, on one port."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import grpc
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from server.auth import SERVICE, Authenticator
from server.config import ServerConfig
from server.guard import CallGuard
from server.paging import PageTokens
from server.ratelimit import RateLimiter
from server.reflection import enable_reflection
from server.servicer import CheckpointServicer
from server.store import Store
from server.tokens import TokenRecord

PAGE_TOKEN_SECRET = "page_token_key"  # noqa: S105 (the name of a key kept in the store)


@dataclass(frozen=True, slots=True)
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer  # type: ignore[name-defined]

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE):
            await self.health.set(name, status)


async def create_server(
    config: ServerConfig, store: Store, tokens: Mapping[str, TokenRecord]
) -> RunningServer:
    """A started gRPC server bound to config.listen (port 0 picks a free port).

    Raises:
        RuntimeError: the address cannot be bound.
    """
    guard = CallGuard(Authenticator(tokens), RateLimiter(config.rate_limit, config.rate_burst))
    server = grpc.aio.server(
        interceptors=[guard],
        options=[
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", config.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    pages = PageTokens(await store.secret(PAGE_TOKEN_SECRET))
    svc_grpc.add_CheckpointServiceServicer_to_server(CheckpointServicer(store, pages), server)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)  # type: ignore[no-untyped-call]
    service_names = [svc.DESCRIPTOR.services_by_name["CheckpointService"].full_name]
    enable_reflection(server, [*service_names, health.SERVICE_NAME])
    try:
        port = server.add_insecure_port(config.listen)
    except RuntimeError as exc:
        raise RuntimeError(f"cannot listen on {config.listen}: {exc}") from exc
    await server.start()
    running = RunningServer(server=server, port=port, health=health_servicer)
    await running.set_serving(True)
    return running
