"""`checkpoint-rest-bridge`: the REST/JSON bridge under uvicorn; flags also read the environment."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from checkpoint_prometheus import new_registry, serve_metrics
from rest_bridge.access_log import start_access_lines
from rest_bridge.app import create_app
from rest_bridge.certs import CertificateError
from rest_bridge.config import DEFAULT_UPSTREAM_CONNECTIONS, BridgeConfig
from rest_bridge.descriptor_set import DEFAULT_SERVICES, SchemaError
from rest_bridge.edge_io import EdgeLimits
from rest_bridge.edge_options import UPSTREAM_TLS_OPTIONS, edge_limits, edge_options, tls_options
from rest_bridge.logs import LOG_OPTIONS, setup_logging
from rest_bridge.metrics import BridgeMetrics
from rest_bridge.options import BRIDGE_OPTIONS, add_options
from rest_bridge.routes import RouteError
from rest_bridge.schema_follower import SchemaFollower, schema_loader
from rest_bridge.serving import split_listen, start_in_background
from rest_bridge.tls import HttpTls, PairPaths, UpstreamFiles
from rest_bridge.tracing import setup_tracing
from rest_bridge.upstream_channel import UpstreamChannel
from rest_bridge.workers import WorkerGroup, in_worker, run_workers, worker_count

PROG = "checkpoint-rest-bridge"
STOP_GRACE = 10.0
"""Seconds a bridge worker may take to finish in-flight requests (uvicorn's graceful timeout)."""

log = logging.getLogger("checkpoint-rest-bridge")

# Reconnect quickly after the gRPC server restarts (grpcio's default backoff grows to 120 s).
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.max_receive_message_length", 4 << 20),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="checkpoint-rest-bridge",
        description="REST/JSON bridge to a gRPC service, with routes derived from its "
        "google.api.http rules. Each flag also reads the environment variable in its help.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    edge = (*edge_options("CHECKPOINT_REST_"), *tls_options("CHECKPOINT_REST_", "HTTP"))
    add_options(parser, (*BRIDGE_OPTIONS, *edge, *UPSTREAM_TLS_OPTIONS, *LOG_OPTIONS))
    return parser


def upstream_files(args: argparse.Namespace) -> UpstreamFiles | None:
    """TLS towards the gRPC server (and a client certificate) when --upstream-ca is set; the
    files are checked now, so a bad one stops start-up.

    Raises:
        CertificateError: a file cannot be used, or a client certificate without --upstream-ca.
    """
    client = None
    if args.upstream_cert is not None or args.upstream_key is not None:
        if args.upstream_cert is None or args.upstream_key is None:
            raise CertificateError("--upstream-cert and --upstream-key go together")
        client = PairPaths(
            args.upstream_cert, args.upstream_key, "--upstream-cert", "--upstream-key"
        )
    if args.upstream_ca is None:
        if client is not None:
            raise CertificateError("--upstream-cert needs --upstream-ca (TLS towards the server)")
        return None
    files = UpstreamFiles(args.upstream_ca, client)
    files.read()
    return files


def upstream_connections(given: int, reflect: bool) -> int:
    """--upstream-connections, 0 resolved: one with --reflect (the schema is one server's, and
    connections to servers of different schemas, as in a rolling change, would mix them),
    else DEFAULT_UPSTREAM_CONNECTIONS (docs/decisions.md)."""
    if given:
        return given
    return 1 if reflect else DEFAULT_UPSTREAM_CONNECTIONS


def http_tls(args: argparse.Namespace) -> HttpTls | None:
    """The HTTPS listener's TLS, when --tls-cert and --tls-key are given.

    Raises:
        CertificateError: only one of them is given, or a file cannot be used.
    """
    if args.tls_cert is None and args.tls_key is None:
        return None
    if args.tls_cert is None or args.tls_key is None:
        raise CertificateError("--tls-cert and --tls-key go together")
    return HttpTls(PairPaths(args.tls_cert, args.tls_key))


def reload_on_sighup(
    tls: HttpTls | None, upstream: UpstreamChannel, follower: SchemaFollower
) -> None:
    """SIGHUP loads the schema again and re-reads the listener's and the upstream channel's
    certificates; a bad file is logged, naming it, and the one in use kept."""

    def reload() -> None:
        follower.trigger("SIGHUP")
        if tls is not None:
            try:
                tls.reload()
            except CertificateError as exc:
                log.error("SIGHUP: kept the current certificate: %s", exc)
            else:
                log.info("SIGHUP: reloaded %s", tls.paths.cert)
        try:
            replaced = upstream.reload()
        except CertificateError as exc:
            log.error("SIGHUP: kept the current upstream channel: %s", exc)
        else:
            if replaced:
                log.info("SIGHUP: upstream TLS files changed: new calls use a new channel")

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)


async def serve(
    config: BridgeConfig,
    group: WorkerGroup | None = None,
    upstream_tls: UpstreamFiles | None = None,
    limits: EdgeLimits | None = None,
    tls: HttpTls | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT; as one worker of --workers, on a SO_REUSEPORT socket.

    Raises:
        RuntimeError: the listen address cannot be bound.
    """
    host, port = split_listen(config.listen)
    metrics, endpoint = None, None
    if config.metrics_listen:
        registry = new_registry()
        metrics = BridgeMetrics(registry)
        endpoint = serve_metrics(
            config.metrics_listen, registry, "--metrics-listen", reuse_port=group is not None
        )
        print(f"checkpoint-rest-bridge: serving metrics on {endpoint.url}", flush=True)
    upstream = UpstreamChannel(
        config.upstream, upstream_tls, CHANNEL_OPTIONS, config.upstream_connections
    )
    async with upstream as channel:
        load, source = schema_loader(config, channel)
        # A descriptor set must load at start; reflection may wait for its upstream.
        peers = group.all_serving if group is not None else None
        schema = None if config.reflect else await load()
        app = create_app(config, channel, schema, peers, metrics)
        follower = SchemaFollower(
            app.live,
            load,
            source,
            channel=channel if config.reflect else None,
            interval=config.reflect_interval if config.reflect else 0.0,
        )
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        reload_on_sighup(tls, upstream, follower)
        server = await start_in_background(
            app,
            config.listen,
            "--listen",
            limits=limits,
            tls=tls.context if tls is not None else None,
            reuse_port=group is not None,
        )
        following = asyncio.create_task(follower.run())
        scheme = "HTTPS" if tls is not None else "HTTP"
        print(
            f"checkpoint-rest-bridge: serving {scheme} on {host}:{port}, "
            f"upstream {config.upstream}",
            flush=True,
        )
        if group is not None:
            group.mark(True)
        try:
            await asyncio.wait(
                [asyncio.ensure_future(stopping.wait()), server.task],
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            if group is not None:
                group.mark(False)
            following.cancel()
            await server.stop()
            if endpoint is not None:
                endpoint.close()
            log.info("stopped")


def supervise(args: argparse.Namespace, argv: list[str]) -> int:
    """`--workers N`: N bridges on the same ports."""
    addresses = (("--listen", args.listen), ("--metrics-listen", args.metrics_listen))
    count = worker_count(args.workers)
    return run_workers("rest_bridge", argv, addresses, count=count, grace=STOP_GRACE, name=PROG)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.reflect and args.descriptor_set:
        parser.error("--reflect and --descriptor-set exclude each other")
    if args.reflect_interval < 0:
        parser.error("--reflect-interval must be 0 or more")
    if args.upstream_connections < 0:
        parser.error("--upstream-connections must be 0 (automatic) or more")
    setup_logging(args.log_format, args.log_level)
    start_access_lines()
    try:
        if worker_count(args.workers) > 1 and not in_worker():
            return supervise(args, list(sys.argv[1:] if argv is None else argv))
    except RuntimeError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    stop_tracing = setup_tracing(PROG)
    config = BridgeConfig(
        listen=args.listen,
        upstream=args.upstream,
        upstream_connections=upstream_connections(args.upstream_connections, args.reflect),
        timeout=args.timeout,
        max_body_bytes=args.max_body_bytes,
        max_in_flight=args.max_in_flight,
        heartbeat=args.heartbeat,
        descriptor_set=args.descriptor_set,
        services=tuple(args.services or (() if args.reflect else DEFAULT_SERVICES)),
        reflect=args.reflect,
        reflect_interval=args.reflect_interval,
        metrics_listen=args.metrics_listen,
        cors_origins=args.cors_origins,
    )
    try:
        limits, tls = edge_limits(args), http_tls(args)
        group = WorkerGroup.from_environment()
        asyncio.run(serve(config, group, upstream_files(args), limits, tls))
    except (SchemaError, RouteError, ValueError, RuntimeError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        stop_tracing()  # exports the spans still buffered
    return 0


if __name__ == "__main__":
    sys.exit(main())
