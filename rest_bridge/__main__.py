"""`checkpoint-rest-bridge`: the REST/JSON bridge under uvicorn; flags also read the environment."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc

from rest_bridge.app import create_app
from rest_bridge.config import (
    DEFAULT_LISTEN,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_TIMEOUT,
    DEFAULT_UPSTREAM,
    BridgeConfig,
)
from rest_bridge.routes import RouteError
from rest_bridge.schema import DEFAULT_SERVICES, SchemaError, default_descriptor_set, load_schema
from rest_bridge.serving import ManagedServer, uvicorn_config

# Reconnect quickly after the gRPC server restarts (grpcio's default backoff grows to 120 s).
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.max_receive_message_length", 4 << 20),
)


def _env(name: str, default: object) -> str:
    return os.environ.get(name, str(default))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="checkpoint-rest-bridge",
        description="REST/JSON bridge to a gRPC service, with routes derived from its "
        "google.api.http rules. Each flag also reads the environment variable in its help.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--listen",
        default=_env("CHECKPOINT_REST_LISTEN", DEFAULT_LISTEN),
        help="HOST:PORT to serve HTTP on [CHECKPOINT_REST_LISTEN]",
    )
    parser.add_argument(
        "--upstream",
        default=_env("CHECKPOINT_UPSTREAM", DEFAULT_UPSTREAM),
        help="HOST:PORT of the gRPC server [CHECKPOINT_UPSTREAM]",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=float(_env("CHECKPOINT_REST_TIMEOUT", DEFAULT_TIMEOUT)),
        help="deadline of each gRPC call in seconds; Grpc-Timeout may shorten it "
        "[CHECKPOINT_REST_TIMEOUT]",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=int(_env("CHECKPOINT_REST_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)),
        help="largest request body accepted; larger is 413 [CHECKPOINT_REST_MAX_BODY_BYTES]",
    )
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=int(_env("CHECKPOINT_REST_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT)),
        help="requests handled at once; more are shed with 503 [CHECKPOINT_REST_MAX_IN_FLIGHT]",
    )
    parser.add_argument(
        "--descriptor-set",
        type=Path,
        default=_env("CHECKPOINT_REST_DESCRIPTOR_SET", "") or None,
        help="FileDescriptorSet (protoc --include_imports --include_source_info) of "
        "the services; default: the checkpoint.v1 set shipped with the package "
        "[CHECKPOINT_REST_DESCRIPTOR_SET]",
    )
    parser.add_argument(
        "--service",
        action="append",
        dest="services",
        help=f"full name of a service to expose; repeat for several (default: "
        f"{', '.join(DEFAULT_SERVICES)})",
    )
    return parser


def _host_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--listen must be HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


async def serve(config: BridgeConfig) -> None:
    schema = load_schema(config.descriptor_set or default_descriptor_set(), config.services)
    host, port = _host_port(config.listen)
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
