"""`checkpoint-rest-bridge`: the REST/JSON bridge under uvicorn behind the edge (limits, TLS,
HTTP/2); flags also read the environment. SIGHUP re-reads the HTTPS certificate."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

import grpc

from rest_bridge.app import create_app
from rest_bridge.certs import CertificateError
from rest_bridge.config import BridgeConfig
from rest_bridge.descriptor_set import (
    DEFAULT_SERVICES,
    SchemaError,
    default_descriptor_set,
    load_schema,
)
from rest_bridge.edge_io import EdgeLimits
from rest_bridge.edge_options import UPSTREAM_TLS_OPTIONS, edge_limits, edge_options, tls_options
from rest_bridge.options import BRIDGE_OPTIONS, add_options
from rest_bridge.routes import RouteError
from rest_bridge.serving import ManagedServer, split_listen, uvicorn_config
from rest_bridge.tls import HttpTls, PairPaths, channel_credentials

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
    add_options(parser, (*BRIDGE_OPTIONS, *edge, *UPSTREAM_TLS_OPTIONS))
    return parser


def upstream_credentials(args: argparse.Namespace) -> grpc.ChannelCredentials | None:
    """TLS towards the gRPC server (and a client certificate) when --upstream-ca is set.

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
    return channel_credentials(args.upstream_ca, client)


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


def reload_on_sighup(tls: HttpTls | None) -> None:
    """SIGHUP re-reads the certificate; a bad file is logged and the old one kept."""
    if tls is None:
        return

    def reload() -> None:
        try:
            tls.reload()
        except CertificateError as exc:
            log.error("SIGHUP: kept the current certificate: %s", exc)
        else:
            log.info("SIGHUP: reloaded %s", tls.paths.cert)

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)


async def serve(
    config: BridgeConfig,
    credentials: grpc.ChannelCredentials | None = None,
    limits: EdgeLimits | None = None,
    tls: HttpTls | None = None,
) -> None:
    schema = load_schema(config.descriptor_set or default_descriptor_set(), config.services)
    host, port = split_listen(config.listen)
    if credentials is None:
        channel = grpc.aio.insecure_channel(config.upstream, options=CHANNEL_OPTIONS)
    else:
        channel = grpc.aio.secure_channel(config.upstream, credentials, options=CHANNEL_OPTIONS)
    async with channel:
        app = create_app(config, channel, schema)
        context = tls.context if tls is not None else None
        server = ManagedServer(uvicorn_config(app, host, port, limits, context))

        def stop() -> None:
            server.should_exit = True

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        reload_on_sighup(tls)
        scheme = "HTTPS" if tls is not None else "HTTP"
        print(
            f"checkpoint-rest-bridge: serving {scheme} on {host}:{port}, "
            f"upstream {config.upstream}",
            flush=True,
        )
        await server.serve()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = BridgeConfig(
        listen=args.listen,
        upstream=args.upstream,
        timeout=args.timeout,
        max_body_bytes=args.max_body_bytes,
        max_in_flight=args.max_in_flight,
        descriptor_set=args.descriptor_set,
        services=tuple(args.services) if args.services else DEFAULT_SERVICES,
    )
    try:
        limits, tls = edge_limits(args), http_tls(args)
        asyncio.run(serve(config, upstream_credentials(args), limits, tls))
    except (SchemaError, RouteError, ValueError) as exc:
        print(f"checkpoint-rest-bridge: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
