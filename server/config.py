"""The server's settings, built once in main() from flags and the environment, then passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from server.grpc_limits import GrpcLimits

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_DATABASE = "sqlite:///checkpoints.db"
DEFAULT_DB_POOL_SIZE = 10
DEFAULT_TOKENS = Path("tokens.json")
DEFAULT_RATE_LIMIT = 100.0
DEFAULT_RATE_BURST = 200
DEFAULT_GRACE_SECONDS = 10.0
DEFAULT_MAX_CONCURRENT_RPCS = 1000
DEFAULT_MAX_WATCHERS = 1000


@dataclass(frozen=True, slots=True)
class ServerConfig:
    listen: str = DEFAULT_LISTEN
    database: str = DEFAULT_DATABASE
    db_pool_size: int = DEFAULT_DB_POOL_SIZE
    """PostgreSQL connections this server keeps; the SQLite store ignores it."""
    tokens_file: Path = DEFAULT_TOKENS
    rate_limit: float = DEFAULT_RATE_LIMIT
    """Requests per second per token; 0 turns rate limiting off."""
    rate_burst: int = DEFAULT_RATE_BURST
    rate_limit_store: str = ""
    """redis://... to share each token's bucket with every replica; empty keeps it local."""
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    """How long in-flight calls may run on after SIGTERM."""
    max_concurrent_rpcs: int = DEFAULT_MAX_CONCURRENT_RPCS
    """Calls handled at once; grpcio refuses more with RESOURCE_EXHAUSTED instead of queueing."""
    shared_buckets: Path | None = None
    """A file of rate-limit buckets shared with the other workers on this machine (--workers);
    None keeps them in this process."""
    reuse_port: bool = False
    """Bind with SO_REUSEPORT, so that the other workers can serve the same port."""
    limits: GrpcLimits = field(default_factory=GrpcLimits)
    """The gRPC port's message, metadata, stream, keepalive and connection limits."""
    max_watchers: int = DEFAULT_MAX_WATCHERS
    """WatchCheckpoints streams open at once in this process; more get RESOURCE_EXHAUSTED."""
