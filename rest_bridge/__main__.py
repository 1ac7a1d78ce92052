"""`checkpoint-rest-bridge`: the REST/JSON bridge under uvicorn; flags also read the environment."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

import grpc

from rest_bridge.app import create_app
from rest_bridge.config import BridgeConfig
from rest_bridge.descriptor_set import (
    DEFAULT_SERVICES,
    SchemaError,
    default_descriptor_set,
    load_schema,
)
from rest_bridge.options import BRIDGE_OPTIONS, add_options
from rest_bridge.routes import RouteError
from rest_bridge.serving import ManagedServer, split_listen, uvicorn_config

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
    add_options(parser, BRIDGE_OPTIONS)
    return parser


async def serve(config: BridgeConfig) -> None:
    schema = load_schema(config.descriptor_set or default_descriptor_set(), config.services)
    host, port = split_listen(config.listen)
    async with grpc.aio.insecure_channel(config.upstream, options=CHANNEL_OPTIONS) as channel:
        app = create_app(config, channel, schema)
        server = ManagedServer(uvicorn_config(app, host, port))

        def stop() -> None:
            server.should_exit = True

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        print(
            f"checkpoint-rest-bridge: serving HTTP on {host}:{port}, upstream {config.upstream}",
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
        heartbeat=args.heartbeat,
        descriptor_set=args.descriptor_set,
        services=tuple(args.services) if args.services else DEFAULT_SERVICES,
    )
    try:
        asyncio.run(serve(config))
    except (SchemaError, RouteError, ValueError) as exc:
        print(f"checkpoint-rest-bridge: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
