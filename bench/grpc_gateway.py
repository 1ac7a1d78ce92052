"""grpc-gateway (Go) in front of checkpoint-server: the reference issue 12's REST ratios divide by.

The binary is built by scripts/ensure_gateway.sh from Debian's packages (grpc-gateway v1,
golang/protobuf 1.3) and bench/gateway/main.go, cached under .bench/gateway/ until protos/ or
main.go change. It serves grpc-gateway's defaults: the checkpoint itself as the answer (the
rule's response_body), JSON names as in the .proto, Authorization forwarded as metadata.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from bench import REPO, procs

BUILD_SCRIPT = REPO / "scripts" / "ensure_gateway.sh"
BUILD_TIMEOUT = 2400.0
"""Seconds for installing the Debian packages and the first build (a cached binary: ~20 ms)."""


def ensure_binary(install: bool) -> Path:
    """The gateway binary, built (and its packages installed, when install) if missing or stale.

    Raises:
        RuntimeError: the build failed, or packages are missing and install is False.
    """
    env = {**os.environ, "CHECKPOINT_BENCH_NO_INSTALL": "0" if install else "1"}
    try:
        done = subprocess.run(
            ["bash", str(BUILD_SCRIPT)],
            stdout=subprocess.PIPE,
            text=True,
            timeout=BUILD_TIMEOUT,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{BUILD_SCRIPT} ran past {BUILD_TIMEOUT:.0f} s") from exc
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not Path(lines[-1]).is_file():
        raise RuntimeError(f"{BUILD_SCRIPT} failed with status {done.returncode} (see above)")
    return Path(lines[-1])


def start(
    name: str, binary: Path, upstream: str, work_dir: Path, connections: int = 1
) -> tuple[procs.Proc, str]:
    """The gateway on a port of its choosing in front of upstream, calling over connections
    client connections in turn: the process, HOST:PORT."""
    args = [str(binary), "-listen", "127.0.0.1:0", "-upstream", upstream]
    args += ["-connections", str(connections)]
    gateway = procs.start(name, args, work_dir)
    address = gateway.wait_for(r"serving REST on (\S+:\d+)").group(1)
    return gateway, address
