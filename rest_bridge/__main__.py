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
from rest_bridge.descriptor_set import DEFAULT_SERVICES, SchemaError
from rest_bridge.options import BRIDGE_OPTIONS, add_options
from rest_bridge.routes import RouteError
from rest_bridge.schema_follower import SchemaFollower, schema_loader
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
    host, port = split_listen(config.listen)
    async with grpc.aio.insecure_channel(config.upstream, options=CHANNEL_OPTIONS) as channel:
        load, source = schema_loader(config, channel)
        # A descriptor set must load at start; reflection may wait for its upstream.
        app = create_app(config, channel, None if config.reflect else await load())
        server = ManagedServer(uvicorn_config(app, host, port))
        follower = SchemaFollower(
            app.live,
            load,
            source,
            channel=channel if config.reflect else None,
            interval=config.reflect_interval if config.reflect else 0.0,
        )

        def stop() -> None:
            server.should_exit = True

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        loop.add_signal_handler(signal.SIGHUP, follower.trigger, "SIGHUP")
        following = asyncio.create_task(follower.run())
        print(
            f"checkpoint-rest-bridge: serving HTTP on {host}:{port}, upstream {config.upstream}",
            flush=True,
        )
        try:
            await server.serve()
        finally:
            following.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.reflect and args.descriptor_set:
        parser.error("--reflect and --descriptor-set exclude each other")
    if args.reflect_interval < 0:
        parser.error("--reflect-interval must be 0 or more")
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
        services=tuple(args.services or (() if args.reflect else DEFAULT_SERVICES)),
        reflect=args.reflect,
        reflect_interval=args.reflect_interval,
    )
    try:
        asyncio.run(serve(config))
    except (SchemaError, RouteError, ValueError) as exc:
        print(f"checkpoint-rest-bridge: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
