"""Both REST doors on one server: `serve --rest-listen` and a separate bridge process.

For tests that must hold on either door: one server (SQLite, rate limit off) serving gRPC and
in-process REST, and a `checkpoint-rest-bridge` in front of its gRPC port, optionally on seeded
data and with CORS allowing some origins (the server by --cors-origin, the bridge by
CHECKPOINT_REST_CORS_ORIGINS, so both ways of configuring it are exercised). Tokens: `writer`
(write), `other` (write, a second client), `both` (read and write), `reader` (read).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e import (
    READ_SCOPE,
    WRITE_SCOPE,
    Process,
    create_token,
    executable,
    free_port,
    import_checkpoints,
    start,
)

ENV_ORIGINS = "CHECKPOINT_REST_CORS_ORIGINS"


@dataclass(frozen=True)
class Doors:
    inprocess: str
    bridge: str
    grpc_address: str
    database: Path
    writer: str
    other: str
    both: str
    reader: str

    @property
    def urls(self) -> dict[str, str]:
        """Each REST door's base URL by name, for parametrised tests."""
        return {"bridge": self.bridge, "inprocess": self.inprocess}


@dataclass(frozen=True)
class Pair:
    """A started server (gRPC and in-process REST) and a bridge in front of its gRPC port."""

    server: Process
    bridge: Process
    grpc_address: str
    rest_address: str
    """HOST:PORT of the server's in-process REST door."""
    bridge_address: str
    """HOST:PORT of the bridge."""


def _address(server: Process, door: str) -> str:
    line = server.wait_for_output(re.compile(rf"serving {door} on \S+:\d+"))
    return line.rsplit(" ", 1)[1]


@contextmanager
def serving_pair(
    work: Path,
    database: str,
    tokens: Path,
    *,
    server_flags: Sequence[str] = (),
    bridge_flags: Sequence[str] = (),
    bridge_env: Mapping[str, str] | None = None,
    prefix: str = "",
) -> Iterator[Pair]:
    """`serve --rest-listen` on free ports with server_flags, and `checkpoint-rest-bridge` in
    front of its gRPC port with bridge_flags and bridge_env, both ready; stopped on exit, the
    bridge first."""
    server = start(
        f"{prefix}server",
        [
            executable("checkpoint-server"),
            *("serve", "--listen", "127.0.0.1:0", "--rest-listen", "127.0.0.1:0"),
            *("--database", database, "--tokens", str(tokens), *server_flags),
        ],
        work,
    )
    procs = [server]
    try:
        grpc_address = _address(server, "gRPC")
        rest_address = _address(server, "REST")
        bridge_address = f"127.0.0.1:{free_port()}"
        env = (
            ["env", *(f"{name}={value}" for name, value in bridge_env.items())]
            if bridge_env
            else []
        )
        bridge = start(
            f"{prefix}bridge",
            [
                *env,
                executable("checkpoint-rest-bridge"),
                *("--listen", bridge_address, "--upstream", grpc_address, *bridge_flags),
            ],
            work,
        )
        procs.append(bridge)
        server.wait_for_http(f"http://{rest_address}/readyz")
        bridge.wait_for_http(f"http://{bridge_address}/readyz")
        yield Pair(server, bridge, grpc_address, rest_address, bridge_address)
    finally:
        for proc in reversed(procs):
            proc.stop()


@contextmanager
def open_doors(
    work: Path, seed: Sequence[dict[str, Any]] = (), origins: Sequence[str] = ()
) -> Iterator[Doors]:
    """Start the server (with --rest-listen) and a bridge, on seed, allowing origins; stop both."""
    tokens = work / "tokens.json"
    writer = create_token(tokens, "writer", [WRITE_SCOPE])
    other = create_token(tokens, "other", [WRITE_SCOPE])
    both = create_token(tokens, "both", [READ_SCOPE, WRITE_SCOPE])
    reader = create_token(tokens, "reader", [READ_SCOPE])
    database = work / "checkpoints.db"
    if seed:
        import_checkpoints(f"sqlite:///{database}", list(seed), work / "seed.json")
    cors = [arg for origin in origins for arg in ("--cors-origin", origin)]
    server_flags = ["--rate-limit", "0", "--grace", "1", *cors]
    url, env = f"sqlite:///{database}", {ENV_ORIGINS: ",".join(origins)}
    with serving_pair(work, url, tokens, server_flags=server_flags, bridge_env=env) as pair:
        yield Doors(
            inprocess=f"http://{pair.rest_address}",
            bridge=f"http://{pair.bridge_address}",
            grpc_address=pair.grpc_address,
            database=database,
            writer=writer,
            other=other,
            both=both,
            reader=reader,
        )
