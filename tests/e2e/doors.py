"""Both REST doors with CORS on, for the HTTP-semantics and browser tests.

One `checkpoint-server serve --rest-listen` (CORS from its --cors-origin flags) and one
`checkpoint-rest-bridge` in front of its gRPC port (CORS from CHECKPOINT_REST_CORS_ORIGINS), on
a fresh SQLite database, each bounded in time and stopped by the caller.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e import Process, create_token, executable, free_port, import_checkpoints, start

ENV_ORIGINS = "CHECKPOINT_REST_CORS_ORIGINS"


@dataclass(frozen=True)
class Doors:
    inprocess: str
    bridge: str
    grpc_address: str
    token: str
    """Read and write."""
    reader: str

    @property
    def both(self) -> tuple[str, str]:
        return (self.inprocess, self.bridge)


def _address(server: Process, door: str) -> str:
    line = server.wait_for_output(re.compile(rf"serving {door} on \S+:\d+"))
    return line.rsplit(" ", 1)[1]


@contextmanager
def open_doors(work: Path, seed: list[dict[str, Any]], origins: Sequence[str]) -> Iterator[Doors]:
    """Start both doors allowing origins; stop them on exit."""
    tokens = work / "tokens.json"
    token = create_token(tokens, "both", ["checkpoints:read", "checkpoints:write"])
    reader = create_token(tokens, "reader", ["checkpoints:read"])
    database = f"sqlite:///{work / 'checkpoints.db'}"
    import_checkpoints(database, seed, work / "seed.json")
    server_args = [executable("checkpoint-server"), "serve", "--listen", "127.0.0.1:0"]
    server_args += ["--rest-listen", "127.0.0.1:0", "--database", database]
    server_args += ["--tokens", str(tokens), "--rate-limit", "0", "--grace", "1"]
    for origin in origins:
        server_args += ["--cors-origin", origin]
    server = start("server", server_args, work)
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
            token=token,
            reader=reader,
        )
    finally:
        for proc in reversed(procs):
            proc.stop()
