"""Assemble the gRPC server: servicer, health, reflection and the call guard, on one port."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import grpc
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from server.auth import SERVICE, Authenticator
from server.config import ServerConfig
from server.errors import CheckpointError
from server.generic_registry import generic_only
from server.guard import CallGuard
from server.guarded import guarded
from server.local_channel import LocalChannel
from server.metrics import ServerMetrics
from server.paging import PageTokens
from server.ratelimit import Limiter, open_rate_limiter
from server.reflection import enable_reflection
from server.resume_tokens import ResumeTokens
from server.servicer import CheckpointServicer
from server.store import Store
from server.tokens import TokenRecord
from server.traced_store import traced_store
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
            max_message_bytes=self.config.limits.max_message_bytes,
            max_concurrent_rpcs=self.config.max_concurrent_rpcs,
        )
        register = guarded(local.as_server(), self.guard)
        svc_grpc.add_CheckpointServiceServicer_to_server(self.servicer, register)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, register)  # type: ignore[no-untyped-call]
        return local

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE):
            await self.health.set(name, status)

    async def follow_store(
        self,
        store: Store,
        interval: float = 1.0,
        peers_serving: Callable[[], bool] | None = None,
    ) -> None:
        """Keep health in step with the store: NOT_SERVING while it cannot answer, and (with
        --workers) while any worker of this machine is not serving. Checks at once, then every
        interval."""
        store_ok, peers_ok = True, True
        while True:
            try:
                await asyncio.wait_for(store.ping(), timeout=interval)
                store_now = True
            except (CheckpointError, TimeoutError):
                store_now = False
            peers_now = peers_serving() if peers_serving is not None else True
            if store_now != store_ok:
                log.warning("store is %s", "reachable again" if store_now else "unreachable")
            if peers_now != peers_ok:
                log.info("%s", "every worker serves" if peers_now else "a worker is not serving")
            if (store_now and peers_now) != (store_ok and peers_ok):
                await self.set_serving(store_now and peers_now)
            store_ok, peers_ok = store_now, peers_now
            await asyncio.sleep(interval)


async def create_server(
    config: ServerConfig,
    store: Store,
    tokens: Mapping[str, TokenRecord],
    metrics: ServerMetrics | None = None,
    credentials: grpc.ServerCredentials | None = None,
) -> RunningServer:
    """A started gRPC server bound to config.listen (port 0 picks a free port), its calls
    counted in metrics when given, with TLS when credentials are given (the entry module
    builds them from the certificate flags).

    Raises:
        RuntimeError: the address cannot be bound.
    """
    limiter = open_rate_limiter(
        config.rate_limit, config.rate_burst, config.rate_limit_store, config.shared_buckets
    )
    if metrics is not None:
        limiter = metrics.count_refusals(limiter)
    guard = CallGuard(Authenticator(tokens), limiter, metrics)
    # No interceptor: the guard wraps each handler once, as it is registered (server.guarded).
    server = grpc.aio.server(
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
        options=[
            *config.limits.channel_options(),
            ("grpc.so_reuseport", 1 if config.reuse_port else 0),
        ],
    )
    pages = PageTokens(await store.secret(PAGE_TOKEN_SECRET))
    resume = ResumeTokens(await store.secret(RESUME_TOKEN_SECRET))
    watches = WatchHub(store, resume, config.max_watchers)
    servicer = CheckpointServicer(traced_store(store, config.database), pages, watches)
    # Generic handlers only: each registered method would cost every call (server.generic_registry).
    port_registry = generic_only(server)
    register = guarded(port_registry, guard)
    svc_grpc.add_CheckpointServiceServicer_to_server(servicer, register)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, register)  # type: ignore[no-untyped-call]
    service_names = [svc.DESCRIPTOR.services_by_name["CheckpointService"].full_name]
    enable_reflection(port_registry, [*service_names, health.SERVICE_NAME])
    try:
        if credentials is None:
            port = server.add_insecure_port(config.listen)
        else:
            port = server.add_secure_port(config.listen, credentials)
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
