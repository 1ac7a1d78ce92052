"""`checkpoint-server`: serve | token create | import; every flag also reads the environment.

The one place that composes the two halves: `serve --rest-listen` puts the REST bridge
(rest_bridge) in front of this server's own servicers through a local channel, and `import`
reads its file with the bridge's JSON codec, so the file's shape is the REST `data` shape.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from checkpoint.v1 import checkpoint_pb2 as pb

from checkpoint_prometheus import new_registry, serve_metrics
from rest_bridge.access_log import line_writer, start_access_lines
from rest_bridge.config import DEFAULT_HEARTBEAT, BridgeConfig
from rest_bridge.data_file import read_messages
from rest_bridge.edge_io import EdgeLimits
from rest_bridge.edge_options import edge_limits, edge_options, optional_path, tls_options
from rest_bridge.embedded import serve_embedded
from rest_bridge.logs import LOG_OPTIONS, setup_logging
from rest_bridge.options import CORS_ORIGIN, Option, add_options
from rest_bridge.tls import ServeTls, read_serve_tls
from rest_bridge.tracing import setup_tracing
from rest_bridge.workers import (
    SHARED_DIR_ENV,
    WorkerGroup,
    in_worker,
    run_workers,
    worker_count,
)
from server.access_log import EVENT, use_writer
from server.app import create_server
from server.config import (
    DEFAULT_DATABASE,
    DEFAULT_DB_POOL_SIZE,
    DEFAULT_GRACE_SECONDS,
    DEFAULT_LISTEN,
    DEFAULT_MAX_CONCURRENT_RPCS,
    DEFAULT_MAX_WATCHERS,
    DEFAULT_RATE_BURST,
    DEFAULT_RATE_LIMIT,
    DEFAULT_TOKENS,
    ServerConfig,
)
from server.errors import CheckpointError
from server.grpc_limits import LIMIT_FLAGS, limits_from
from server.importer import import_file
from server.metered_store import MeteredStore, backend_name
from server.metrics import ServerMetrics
from server.store import migrate, open_store, redact_url
from server.tokens import SCOPES, TokensFileError, create_token, load_tokens

PROG = "checkpoint-server"
log = logging.getLogger(PROG)

DATABASE = Option(
    "--database",
    "database URL: sqlite:///PATH or postgresql://USER@HOST:PORT/DB",
    env="CHECKPOINT_DATABASE",
    default=DEFAULT_DATABASE,
)
TOKENS = Option(
    "--tokens",
    "tokens file (names, SHA-256 hashes, scopes)",
    env="CHECKPOINT_TOKENS",
    default=DEFAULT_TOKENS,
    type=Path,
)
SERVE_OPTIONS: tuple[Option, ...] = (
    Option(
        "--listen",
        "HOST:PORT to listen on; port 0 picks a free one",
        env="CHECKPOINT_LISTEN",
        default=DEFAULT_LISTEN,
    ),
    DATABASE,
    Option(
        "--db-pool-size",
        "PostgreSQL connections this server keeps open; SQLite ignores it",
        env="CHECKPOINT_DB_POOL_SIZE",
        default=DEFAULT_DB_POOL_SIZE,
        type=int,
    ),
    TOKENS,
    Option(
        "--rate-limit",
        "requests per second per token, 0 for no limit",
        env="CHECKPOINT_RATE_LIMIT",
        default=DEFAULT_RATE_LIMIT,
        type=float,
    ),
    Option(
        "--rate-burst",
        "requests a token may make at once before the rate applies",
        env="CHECKPOINT_RATE_BURST",
        default=DEFAULT_RATE_BURST,
        type=int,
    ),
    Option(
        "--rate-limit-store",
        "redis://HOST:PORT/DB keeping every token's bucket, shared by all replicas using it "
        "(fails open to per-replica buckets while Redis is unreachable); empty keeps the "
        "buckets in this process",
        env="CHECKPOINT_RATE_LIMIT_STORE",
        default="",
    ),
    Option(
        "--grace",
        "seconds in-flight calls may finish after SIGTERM",
        env="CHECKPOINT_GRACE_SECONDS",
        default=DEFAULT_GRACE_SECONDS,
        type=float,
    ),
    Option(
        "--rest-listen",
        "also serve the REST bridge on HOST:PORT from this process, calling the servicer "
        "without a network hop (same auth, rate limits and errors); empty for none",
        env="CHECKPOINT_INPROCESS_REST_LISTEN",
        default="",
    ),
    Option(
        "--heartbeat",
        "seconds between heartbeat comments on an idle Server-Sent Events stream of "
        "--rest-listen; 0 for none",
        env="CHECKPOINT_INPROCESS_REST_HEARTBEAT_SECONDS",
        default=DEFAULT_HEARTBEAT,
        type=float,
    ),
    Option(
        "--max-concurrent-rpcs",
        "calls handled at once; more are refused with RESOURCE_EXHAUSTED, never queued",
        env="CHECKPOINT_MAX_CONCURRENT_RPCS",
        default=DEFAULT_MAX_CONCURRENT_RPCS,
        type=int,
    ),
    Option(
        "--workers",
        "worker processes serving the same ports (gRPC and --rest-listen), restarted when they "
        "die, sharing each token's rate-limit budget; 0 for one per core",
        env="CHECKPOINT_WORKERS",
        default=1,
        type=int,
    ),
    Option(
        "--metrics-listen",
        "HOST:PORT serving Prometheus metrics at /metrics (its own port, never the API's; "
        "includes the --rest-listen bridge's); empty for none",
        env="CHECKPOINT_METRICS_LISTEN",
        default="",
    ),
    *LOG_OPTIONS,
    CORS_ORIGIN,
    *tls_options("CHECKPOINT_", "gRPC and --rest-listen"),
    Option(
        "--tls-client-ca",
        "PEM CA certificate(s): the gRPC port then requires client certificates it signed (mTLS); "
        "needs --tls-cert; re-read on SIGHUP",
        env="CHECKPOINT_TLS_CLIENT_CA",
        default="",
        type=optional_path,
    ),
    *edge_options("CHECKPOINT_INPROCESS_REST_", "the --rest-listen port"),
    *(
        Option(r.flag, r.help, env=r.env, default=r.default, type=r.type, extra={"dest": r.field})
        for r in LIMIT_FLAGS
    ),
    Option(
        "--max-watchers",
        "WatchCheckpoints streams open at once; more are refused with RESOURCE_EXHAUSTED "
        "(REST 429)",
        env="CHECKPOINT_MAX_WATCHERS",
        default=DEFAULT_MAX_WATCHERS,
        type=int,
    ),
)
TOKEN_CREATE_OPTIONS: tuple[Option, ...] = (
    TOKENS,
    Option(
        "--name",
        "who the token is for (shown in errors and logs)",
        extra={"required": True},
    ),
    Option(
        "--scope",
        "a scope to grant; repeat for several",
        extra={"action": "append", "required": True, "choices": sorted(SCOPES)},
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="checkpoint-server",
        description="Checkpoint metadata gRPC server. Each flag also reads the environment "
        "variable named in its help.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve CheckpointService, health and reflection over gRPC",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_options(serve, SERVE_OPTIONS)
    token = commands.add_parser("token", help="manage bearer tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_commands.add_parser(
        "create",
        help="make a new token, print it once and store only its SHA-256",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_options(create, TOKEN_CREATE_OPTIONS)
    load = commands.add_parser(
        "import",
        help="load a JSON array of checkpoints in the REST data shape (idempotent by id)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_options(load, [DATABASE])
    load.add_argument("file", type=Path, help='JSON file: [{"display_name": ..., ...}, ...]')
    return parser


@dataclass(frozen=True, slots=True)
class Doors:
    """What `serve` opens besides the gRPC port, and how (from the flags)."""

    rest_listen: str = ""
    metrics_listen: str = ""
    cors_origins: tuple[str, ...] = ()
    limits: EdgeLimits | None = None
    tls: ServeTls | None = None
    group: WorkerGroup | None = None
    """The worker group of --workers, None for a single process."""
    heartbeat: float = DEFAULT_HEARTBEAT
    """Seconds between SSE heartbeats on the --rest-listen port's streams."""


async def serve(config: ServerConfig, doors: Doors) -> None:
    """Run until SIGTERM or SIGINT, then drain: NOT_SERVING, refuse new calls, finish in-flight.
    SIGHUP re-reads the certificates.

    As one worker of a group (--workers), health is SERVING only while every worker serves.
    """
    tls, group, metrics_listen = doors.tls, doors.group, doors.metrics_listen
    tokens = load_tokens(config.tokens_file)
    registry = new_registry() if metrics_listen else None
    metrics = None if registry is None else ServerMetrics(registry)
    # Bound first: a bad address fails before anything else is started.
    endpoint = (
        None
        if registry is None
        else serve_metrics(
            metrics_listen, registry, "--metrics-listen", reuse_port=config.reuse_port
        )
    )
    store = open_store(config.database, config.db_pool_size)
    if metrics is not None:
        store = MeteredStore(store, metrics, backend_name(config.database))
    credentials = tls.grpc.credentials if tls is not None else None
    running = await create_server(config, store, tokens, metrics, credentials)
    host = config.listen.rsplit(":", 1)[0]
    print(f"checkpoint-server: serving gRPC on {host}:{running.port}", flush=True)
    log.info("serving gRPC on %s:%s", host, running.port)
    rest = None
    if doors.rest_listen:
        rest = await serve_embedded(
            running.local_channel(),
            BridgeConfig(
                listen=doors.rest_listen,
                cors_origins=doors.cors_origins,
                heartbeat=doors.heartbeat,
            ),
            flag="--rest-listen",
            registry=registry,
            limits=doors.limits,
            tls=tls.http.context if tls is not None else None,
            reuse_port=config.reuse_port,
        )
        print(f"checkpoint-server: serving REST on {rest.host}:{rest.port}", flush=True)
        log.info("serving REST on %s:%s", rest.host, rest.port)
    if endpoint is not None:
        print(f"checkpoint-server: serving metrics on {endpoint.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if tls is not None:
        loop.add_signal_handler(signal.SIGHUP, tls.reload)
    if group is not None:
        group.mark(True)
    peers = group.all_serving if group is not None else None
    watcher = asyncio.create_task(running.follow_store(store, peers_serving=peers))
    await stop.wait()
    log.info("shutting down: finishing in-flight calls for up to %.1f s", config.grace_seconds)
    watcher.cancel()
    if group is not None:
        group.mark(False)
    await running.set_serving(False)
    await running.watches.close()  # streams end now with UNAVAILABLE; clients resume elsewhere
    if rest is not None:
        await rest.stop()
    await running.server.stop(config.grace_seconds)
    await running.limiter.aclose()
    await store.close()
    if endpoint is not None:
        endpoint.close()
    log.info("stopped")


def _entries(path: Path) -> list[pb.Checkpoint]:
    """An import file's checkpoints, decoded as REST clients send them (DecodeError if not)."""
    return read_messages(path, pb.Checkpoint, "checkpoints")


def supervise(args: argparse.Namespace, argv: list[str]) -> int:
    """`serve --workers N`: migrate the store once, then run N workers on the same ports.

    Raises:
        RuntimeError: a listen address cannot be bound.
    """
    asyncio.run(migrate(args.database))
    addresses = (
        ("--listen", args.listen),
        ("--rest-listen", args.rest_listen),
        ("--metrics-listen", args.metrics_listen),
    )
    count = worker_count(args.workers)
    return run_workers("server", argv, addresses, count=count, grace=args.grace, name=PROG)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Only serve takes the log flags; the other commands log as its defaults say.
    setup_logging(getattr(args, "log_format", None), getattr(args, "log_level", "info"))
    start_access_lines()  # the --rest-listen door's lines; the server's own next
    use_writer(line_writer(EVENT))
    try:
        if args.command == "serve" and worker_count(args.workers) > 1 and not in_worker():
            return supervise(args, list(sys.argv[1:] if argv is None else argv))
        if args.command == "serve":
            group = WorkerGroup.from_environment()
            shared = os.environ.get(SHARED_DIR_ENV) if group is not None else None
            stop_tracing = setup_tracing("checkpoint-server")
            config = ServerConfig(
                listen=args.listen,
                database=args.database,
                db_pool_size=args.db_pool_size,
                tokens_file=args.tokens,
                rate_limit=args.rate_limit,
                rate_burst=args.rate_burst,
                rate_limit_store=args.rate_limit_store,
                grace_seconds=args.grace,
                max_concurrent_rpcs=args.max_concurrent_rpcs,
                shared_buckets=Path(shared) / "ratelimit" if shared else None,
                reuse_port=group is not None,
                limits=limits_from(vars(args)),
                max_watchers=args.max_watchers,
            )
            tls = read_serve_tls(args.tls_cert, args.tls_key, args.tls_client_ca)
            doors = Doors(
                rest_listen=args.rest_listen,
                metrics_listen=args.metrics_listen,
                cors_origins=args.cors_origins,
                limits=edge_limits(args),
                tls=tls,
                group=group,
                heartbeat=args.heartbeat,
            )
            try:
                asyncio.run(serve(config, doors))
            finally:
                stop_tracing()  # exports the spans still buffered
        elif args.command == "token":
            token = create_token(args.tokens, args.name, args.scope)
            print(token)
            print(
                f"stored the SHA-256 of token {args.name!r} in {args.tokens}; "
                "the token is not shown again",
                file=sys.stderr,
            )
        else:
            count = asyncio.run(import_file(args.database, _entries(args.file), str(args.file)))
            print(f"imported {count} checkpoint(s) into {redact_url(args.database)}")
    except (TokensFileError, CheckpointError, RuntimeError, ValueError) as exc:
        print(f"checkpoint-server: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
