"""`checkpoint-server`: serve | token create | import; every flag also reads the environment."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from rest_bridge.config import BridgeConfig
from server.app import create_server
from server.config import (
    DEFAULT_DATABASE,
    DEFAULT_DB_POOL_SIZE,
    DEFAULT_GRACE_SECONDS,
    DEFAULT_LISTEN,
    DEFAULT_MAX_CONCURRENT_RPCS,
    DEFAULT_RATE_BURST,
    DEFAULT_RATE_LIMIT,
    DEFAULT_TOKENS,
    ServerConfig,
)
from server.errors import CheckpointError
from server.importer import import_checkpoints, read_import_file
from server.rest import serve_rest
from server.store import open_store, redact_url
from server.tokens import SCOPES, TokensFileError, create_token, load_tokens

log = logging.getLogger("checkpoint-server")


def _env(name: str, default: object) -> str:
    return os.environ.get(name, str(default))


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
    serve.add_argument(
        "--listen",
        default=_env("CHECKPOINT_LISTEN", DEFAULT_LISTEN),
        help="HOST:PORT to listen on; port 0 picks a free one [CHECKPOINT_LISTEN]",
    )
    _database_flag(serve)
    serve.add_argument(
        "--db-pool-size",
        type=int,
        default=int(_env("CHECKPOINT_DB_POOL_SIZE", DEFAULT_DB_POOL_SIZE)),
        help="PostgreSQL connections this server keeps open; SQLite ignores it "
        "[CHECKPOINT_DB_POOL_SIZE]",
    )
    _tokens_flag(serve)
    serve.add_argument(
        "--rate-limit",
        type=float,
        default=float(_env("CHECKPOINT_RATE_LIMIT", DEFAULT_RATE_LIMIT)),
        help="requests per second per token, 0 for no limit [CHECKPOINT_RATE_LIMIT]",
    )
    serve.add_argument(
        "--rate-burst",
        type=int,
        default=int(_env("CHECKPOINT_RATE_BURST", DEFAULT_RATE_BURST)),
        help="requests a token may make at once before the rate applies [CHECKPOINT_RATE_BURST]",
    )
    serve.add_argument(
        "--rate-limit-store",
        default=_env("CHECKPOINT_RATE_LIMIT_STORE", ""),
        help="redis://HOST:PORT/DB keeping every token's bucket, shared by all replicas using "
        "it (fails open to per-replica buckets while Redis is unreachable); empty keeps the "
        "buckets in this process [CHECKPOINT_RATE_LIMIT_STORE]",
    )
    serve.add_argument(
        "--grace",
        type=float,
        default=float(_env("CHECKPOINT_GRACE_SECONDS", DEFAULT_GRACE_SECONDS)),
        help="seconds in-flight calls may finish after SIGTERM [CHECKPOINT_GRACE_SECONDS]",
    )
    serve.add_argument(
        "--rest-listen",
        default=_env("CHECKPOINT_INPROCESS_REST_LISTEN", ""),
        help="also serve the REST bridge on HOST:PORT from this process, calling the servicer "
        "without a network hop (same auth, rate limits and errors); empty for none "
        "[CHECKPOINT_INPROCESS_REST_LISTEN]",
    )
    serve.add_argument(
        "--max-concurrent-rpcs",
        type=int,
        default=int(_env("CHECKPOINT_MAX_CONCURRENT_RPCS", DEFAULT_MAX_CONCURRENT_RPCS)),
        help="calls handled at once; more are refused with RESOURCE_EXHAUSTED, never queued "
        "[CHECKPOINT_MAX_CONCURRENT_RPCS]",
    )

    token = commands.add_parser("token", help="manage bearer tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_commands.add_parser(
        "create",
        help="make a new token, print it once and store only its SHA-256",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _tokens_flag(create)
    create.add_argument(
        "--name", required=True, help="who the token is for (shown in errors and logs)"
    )
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=sorted(SCOPES),
        help="a scope to grant; repeat for several",
    )

    load = commands.add_parser(
        "import",
        help="load a JSON array of checkpoints in the REST data shape (idempotent by id)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _database_flag(load)
    load.add_argument("file", type=Path, help='JSON file: [{"display_name": ..., ...}, ...]')
    return parser


def _database_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        default=_env("CHECKPOINT_DATABASE", DEFAULT_DATABASE),
        help="database URL: sqlite:///PATH or postgresql://USER@HOST:PORT/DB [CHECKPOINT_DATABASE]",
    )


def _tokens_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tokens",
        type=Path,
        default=Path(_env("CHECKPOINT_TOKENS", DEFAULT_TOKENS)),
        help="tokens file (names, SHA-256 hashes, scopes) [CHECKPOINT_TOKENS]",
    )


async def serve(config: ServerConfig, rest_listen: str = "") -> None:
    """Run until SIGTERM or SIGINT, then drain: NOT_SERVING, refuse new calls, finish in-flight."""
    tokens = load_tokens(config.tokens_file)
    store = open_store(config.database, config.db_pool_size)
    running = await create_server(config, store, tokens)
    host = config.listen.rsplit(":", 1)[0]
    print(f"checkpoint-server: serving gRPC on {host}:{running.port}", flush=True)
    rest = None
    if rest_listen and running.local is not None:
        rest = await serve_rest(rest_listen, running.local, BridgeConfig(listen=rest_listen))
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
    if rest is not None:
        await rest.stop()
    await running.server.stop(config.grace_seconds)
    if running.limiter is not None:
        await running.limiter.aclose()
    await store.close()


async def _import(database: str, path: Path) -> int:
    entries = read_import_file(path)
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
            )
            asyncio.run(serve(config, args.rest_listen))
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
