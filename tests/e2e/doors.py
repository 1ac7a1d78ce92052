"""Both REST doors on one server: `serve --rest-listen` and a separate bridge process.

For tests that must hold on either door: one server (SQLite, rate limit off) serving gRPC and
in-process REST, and a `checkpoint-rest-bridge` in front of its gRPC port, optionally on seeded
data and with CORS allowing some origins (the server by --cors-origin, the bridge by
CHECKPOINT_REST_CORS_ORIGINS, so both ways of configuring it are exercised). Tokens: `writer`
(write), `other` (write, a second client), `both` (read and write), `reader` (read).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
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


def _address(server: Process, door: str) -> str:
    line = server.wait_for_output(re.compile(rf"serving {door} on \S+:\d+"))
    return line.rsplit(" ", 1)[1]


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
    server = start(
        "server",
        [
            executable("checkpoint-server"),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--rest-listen",
            "127.0.0.1:0",
            "--database",
            f"sqlite:///{database}",
            "--tokens",
            str(tokens),
            "--rate-limit",
            "0",
            "--grace",
            "1",
            *cors,
        ],
        work,
    )
    procs = [server]
    try:
        grpc_address = _address(server, "gRPC")
        rest_address = _address(server, "REST")
        bridge_address = f"127.0.0.1:{free_port()}"
        bridge = start(
            "bridge",
            [
                "env",
                f"{ENV_ORIGINS}={','.join(origins)}",
                executable("checkpoint-rest-bridge"),
                "--listen",
                bridge_address,
                "--upstream",
                grpc_address,
            ],
            work,
        )
        procs.append(bridge)
        server.wait_for_http(f"http://{rest_address}/readyz")
        bridge.wait_for_http(f"http://{bridge_address}/readyz")
        yield Doors(
            inprocess=f"http://{rest_address}",
            bridge=f"http://{bridge_address}",
            grpc_address=grpc_address,
            database=database,
            writer=writer,
            other=other,
            both=both,
            reader=reader,
        )
    finally:
        for proc in reversed(procs):
            proc.stop()
