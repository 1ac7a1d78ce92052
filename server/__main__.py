"""`checkpoint-server`: serve | token create | import; every flag also reads the environment.

The one place that composes the two halves: `serve --rest-listen` puts the REST bridge
(rest_bridge) in front of this server's own servicers through a local channel, and `import`
reads its file with the bridge's JSON codec, so the file's shape is the REST `data` shape.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from checkpoint.v1 import checkpoint_pb2 as pb

from rest_bridge.app import create_app
from rest_bridge.codec import Codec, DecodeError
from rest_bridge.config import DEFAULT_HEARTBEAT, BridgeConfig
from rest_bridge.descriptor_set import SchemaError, default_descriptor_set, load_schema
from rest_bridge.options import Option, add_options
from rest_bridge.routes import RouteError
from rest_bridge.serving import BackgroundServer, start_in_background
from server.app import RunningServer, create_server
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
from server.errors import CheckpointError, InvalidArgument
from server.importer import import_checkpoints, validate_entries
from server.store import open_store, redact_url
from server.tokens import SCOPES, TokensFileError, create_token, load_tokens

log = logging.getLogger("checkpoint-server")

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


async def _serve_rest(
    listen: str, running: RunningServer, heartbeat: float = DEFAULT_HEARTBEAT
) -> BackgroundServer:
    """The REST bridge on listen, calling this server's guarded servicers in-process.

    Raises:
        RuntimeError: the bridge cannot be built or listen cannot be served.
    """
    config = BridgeConfig(listen=listen, heartbeat=heartbeat)
    try:
        schema = load_schema(config.descriptor_set or default_descriptor_set(), config.services)
        app = create_app(config, running.local_channel(), schema)
    except (SchemaError, RouteError) as exc:
        raise RuntimeError(f"cannot build the REST bridge: {exc}") from exc
    return await start_in_background(app, listen, "--rest-listen")


async def serve(
    config: ServerConfig, rest_listen: str = "", heartbeat: float = DEFAULT_HEARTBEAT
) -> None:
    """Run until SIGTERM or SIGINT, then drain: NOT_SERVING, refuse new calls, finish in-flight."""
    tokens = load_tokens(config.tokens_file)
    store = open_store(config.database, config.db_pool_size)
    running = await create_server(config, store, tokens)
    host = config.listen.rsplit(":", 1)[0]
    print(f"checkpoint-server: serving gRPC on {host}:{running.port}", flush=True)
    rest = None
    if rest_listen:
        rest = await _serve_rest(rest_listen, running, heartbeat)
        print(f"checkpoint-server: serving REST on {rest.host}:{rest.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(running.follow_store(store))
    await stop.wait()
    log.info("shutting down: finishing in-flight calls for up to %.1f s", config.grace_seconds)
    watcher.cancel()
    await running.set_serving(False)
    await running.watches.close()  # streams end now with UNAVAILABLE; clients resume elsewhere
    if rest is not None:
        await rest.stop()
    await running.server.stop(config.grace_seconds)
    await running.limiter.aclose()
    await store.close()


def read_import_file(path: Path) -> list[pb.Checkpoint]:
    """The entries of an import file, decoded as REST clients send a checkpoint.

    Raises:
        InvalidArgument: the file is not a JSON array of checkpoint objects.
    """
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"cannot read {path}: {exc}") from exc
    if not isinstance(entries, list):
        raise InvalidArgument(f"{path}: expected a JSON array of checkpoints")
    codec = Codec()
    messages: list[pb.Checkpoint] = []
    for index, entry in enumerate(entries):
        message = pb.Checkpoint()
        try:
            codec.decode(entry, message, f"[{index}]")
        except DecodeError as exc:
            raise InvalidArgument(str(exc)) from exc
        messages.append(message)
    return messages


async def _import(database: str, path: Path) -> int:
    entries = validate_entries(read_import_file(path), str(path))
    store = open_store(database)
    try:
        return await import_checkpoints(store, entries)
    finally:
        await store.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "serve":
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
                max_watchers=args.max_watchers,
            )
            asyncio.run(serve(config, args.rest_listen, args.heartbeat))
        elif args.command == "token":
            token = create_token(args.tokens, args.name, args.scope)
            print(token)
            print(
                f"stored the SHA-256 of token {args.name!r} in {args.tokens}; "
                "the token is not shown again",
                file=sys.stderr,
            )
        else:
            count = asyncio.run(_import(args.database, args.file))
            print(f"imported {count} checkpoint(s) into {redact_url(args.database)}")
    except (TokensFileError, CheckpointError, RuntimeError) as exc:
        print(f"checkpoint-server: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
