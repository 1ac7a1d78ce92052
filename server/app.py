"""Assemble the gRPC server: servicer, health, reflection and the call guard, on one port."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import grpc
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from server.auth import SERVICE, Authenticator
from server.config import ServerConfig
from server.errors import CheckpointError
from server.guard import CallGuard
from server.local_channel import LocalChannel
from server.paging import PageTokens
from server.ratelimit import Limiter, open_rate_limiter
from server.reflection import enable_reflection
from server.resume_tokens import ResumeTokens
from server.servicer import CheckpointServicer
from server.store import Store
from server.tokens import TokenRecord
from server.watch import WatchHub

log = logging.getLogger(__name__)

PAGE_TOKEN_SECRET = "page_token_key"  # noqa: S105 (the name of a key kept in the store)
RESUME_TOKEN_SECRET = "resume_token_key"  # noqa: S105 (the name of a key kept in the store)


@dataclass(frozen=True, slots=True)
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer  # type: ignore[name-defined]
    limiter: Limiter
    """The rate limiter of the call guard; whoever stops the server closes it (aclose)."""
    guard: CallGuard
    servicer: CheckpointServicer
    config: ServerConfig
    watches: WatchHub
    """Open WatchCheckpoints streams; closed first on shutdown, so they end with UNAVAILABLE."""

    def local_channel(self) -> LocalChannel:
        """A channel to the same servicers behind the same guard, without a network hop.

        Built only when asked for (serve --rest-listen): calls through it share the gRPC port's
        rate-limit buckets, health and store, and answer exactly what the port answers.
        """
        local = LocalChannel(
            [self.guard],
            max_message_bytes=self.config.max_message_bytes,
            max_concurrent_rpcs=self.config.max_concurrent_rpcs,
        )
        svc_grpc.add_CheckpointServiceServicer_to_server(self.servicer, local.as_server())
        health_pb2_grpc.add_HealthServicer_to_server(self.health, local.as_server())  # type: ignore[no-untyped-call]
        return local

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE):
            await self.health.set(name, status)

    async def follow_store(self, store: Store, interval: float = 1.0) -> None:
        """Keep health in step with the store: NOT_SERVING while it cannot answer."""
        serving = True
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.wait_for(store.ping(), timeout=interval)
                healthy = True
            except (CheckpointError, TimeoutError):
                healthy = False
            if healthy != serving:
                log.warning("store is %s", "reachable again" if healthy else "unreachable")
                serving = healthy
                await self.set_serving(serving)


async def create_server(
    config: ServerConfig, store: Store, tokens: Mapping[str, TokenRecord]
) -> RunningServer:
    """A started gRPC server bound to config.listen (port 0 picks a free port).

    Raises:
        RuntimeError: the address cannot be bound.
    """
    limiter = open_rate_limiter(config.rate_limit, config.rate_burst, config.rate_limit_store)
    guard = CallGuard(Authenticator(tokens), limiter)
    server = grpc.aio.server(
        interceptors=[guard],
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", config.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    pages = PageTokens(await store.secret(PAGE_TOKEN_SECRET))
    resume = ResumeTokens(await store.secret(RESUME_TOKEN_SECRET))
    watches = WatchHub(store, resume, config.max_watchers)
    servicer = CheckpointServicer(store, pages, watches)
    svc_grpc.add_CheckpointServiceServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)  # type: ignore[no-untyped-call]
    service_names = [svc.DESCRIPTOR.services_by_name["CheckpointService"].full_name]
    enable_reflection(server, [*service_names, health.SERVICE_NAME])
    try:
        port = server.add_insecure_port(config.listen)
    except RuntimeError as exc:
        raise RuntimeError(f"cannot listen on {config.listen}: {exc}") from exc
    await server.start()
    running = RunningServer(
        server=server,
        port=port,
        health=health_servicer,
        limiter=limiter,
        guard=guard,
        servicer=servicer,
        config=config,
        watches=watches,
    )
    await running.set_serving(True)
    return running
