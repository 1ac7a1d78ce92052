"""`make run`: start the checkpoint service on this machine with demonstration data.

Creates DIR (default .run) holding a SQLite database and a tokens file, imports
scripts/demo_checkpoints.json (idempotent by id, so re-running is safe), makes a new random token
with both scopes and prints it once with ready-to-paste `curl` and `buf curl` commands, then runs
`checkpoint-server serve` (gRPC, 127.0.0.1:50051; metrics on 127.0.0.1:9464) and
`checkpoint-rest-bridge` (REST, 127.0.0.1:8080; metrics on 127.0.0.1:9465), printing the
/metrics URLs, until Ctrl-C, SIGTERM or SIGHUP (the terminal closed), when it stops both and
exits 0. If either server fails to start or dies, the other is stopped and the exit status is 1.

Whatever ends this script ends its servers: a signal, a closed pipe on its output (Ctrl-C on
`make run | tee log` kills tee first), an exception of its own (a `finally` stops them), and even
SIGKILL (each child asks the kernel for SIGTERM when its parent dies, PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import secrets
import select
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
DEFAULT_DATA = HERE / "demo_checkpoints.json"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
SCOPES = ("checkpoints:read", "checkpoints:write")
# Display names from demo_checkpoints.json used in the printed examples.
EXAMPLE_NAME = "ubuntu-24.04-base"
SPACED_NAME = "postgres 16 warm cache"


def executable(name: str) -> str:
    """The console script beside this interpreter (the project's .venv), else from PATH."""
    candidate = BIN / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name) or name


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="run_demo.py",
        description="Run checkpoint-server and checkpoint-rest-bridge with demonstration data.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--dir", type=Path, default=Path(".run"), help="where data and tokens go")
    parser.add_argument("--grpc-listen", default="127.0.0.1:50051", help="gRPC HOST:PORT")
    parser.add_argument("--rest-listen", default="127.0.0.1:8080", help="REST HOST:PORT")
    parser.add_argument(
        "--metrics-listen", default="127.0.0.1:9464", help="the server's /metrics HOST:PORT"
    )
    parser.add_argument(
        "--rest-metrics-listen", default="127.0.0.1:9465", help="the bridge's /metrics HOST:PORT"
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="checkpoints to import (REST data shape)"
    )
    return parser.parse_args(argv)


def run(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )


def new_token(tokens: Path) -> str:
    """A fresh read-write token named demo-<UTC timestamp>-<random>, stored as its hash."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"demo-{stamp}-{secrets.token_hex(2)}"
    args = [executable("checkpoint-server"), "token", "create", "--tokens", str(tokens)]
    args += ["--name", name]
    for scope in SCOPES:
        args += ["--scope", scope]
    result = run(args)
    if result.returncode != 0:
        raise RuntimeError(f"could not create a token:\n{result.stderr.strip()}")
    return result.stdout.strip()


def local_address(listen: str) -> str:
    """The address a client on this machine uses for a listen address (0.0.0.0 -> 127.0.0.1)."""
    host, _, port = listen.rpartition(":")
    if host in ("", "0.0.0.0", "[::]", "::"):  # noqa: S104 (we only connect to it)
        host = "127.0.0.1"
    return f"{host}:{port}"


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int) -> None:
    """In a child before exec: ask for SIGTERM when the parent dies (Linux), and stop at once if
    it already has (the parent may die between fork and this call)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)


def say(text: str, *, error: bool = False) -> None:
    """Print, unless nobody reads our output any more (the pipe's reader is gone)."""
    with contextlib.suppress(OSError):
        print(text, file=sys.stderr if error else sys.stdout, flush=True)


def output_closed() -> bool:
    """True when stdout is a pipe whose reader has gone (poll reports an error on it)."""
    try:
        if not stat.S_ISFIFO(os.fstat(sys.stdout.fileno()).st_mode):
            return False
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError):
        return False


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own URL)
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def stop(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process still running, then SIGKILL those that outlive STOP_TIMEOUT."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


def banner(token: str, grpc: str, rest: str, data_dir: Path, metrics: Sequence[str]) -> str:
    buf = executable("buf")
    with contextlib.suppress(ValueError):  # on another drive (Windows) it stays absolute
        buf = os.path.relpath(buf)
    auth = '"Authorization: Bearer $TOKEN"'
    spaced = SPACED_NAME.replace(" ", "%20")
    body = shlex.quote(f'{{"checkpoint_id": "{SPACED_NAME}"}}')
    rule = "=" * 78
    return "\n".join(
        [
            rule,
            " The checkpoint service is running with demonstration data.",
            f"   gRPC  {grpc}   (checkpoint-server; database {data_dir / 'checkpoints.db'})",
            f"   REST  http://{rest}   (checkpoint-rest-bridge)",
            f"   Prometheus metrics  http://{metrics[0]}/metrics (server)  "
            f"http://{metrics[1]}/metrics (bridge)",
            "",
            " A new token with checkpoints:read and checkpoints:write (shown only now; its",
            f" SHA-256 is in {data_dir / 'tokens.json'}):",
            "",
            f"   export TOKEN='{token}'",
            "",
            " Then try:",
            "",
            f"   curl -H {auth} http://{rest}/v1/checkpoints/{EXAMPLE_NAME}",
            f"   curl -H {auth} http://{rest}/v1/checkpoints/{spaced}",
            f"   curl -H {auth} http://{rest}/v1/checkpoints",
            f"   {buf} curl --protocol grpc --http2-prior-knowledge -H {auth} \\",
            f"     -d {body} \\",
            f"     http://{grpc}/checkpoint.v1.CheckpointService/GetCheckpoint",
            f"   {buf} curl --protocol grpc --http2-prior-knowledge --list-methods http://{grpc}",
            "",
            " Ctrl-C stops both servers.",
            rule,
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    data_dir: Path = args.dir
    data_dir.mkdir(parents=True, exist_ok=True)
    database = f"sqlite:///{(data_dir / 'checkpoints.db').resolve()}"
    tokens = data_dir / "tokens.json"

    server_command = executable("checkpoint-server")
    loaded = run([server_command, "import", "--database", database, str(args.data)])
    if loaded.returncode != 0:
        say(f"run_demo: import failed:\n{loaded.stderr.strip()}", error=True)
        return 1
    say(loaded.stdout.strip())
    try:
        token = new_token(tokens)
    except RuntimeError as exc:
        say(f"run_demo: {exc}", error=True)
        return 1

    stopping: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)

    # Own sessions: a Ctrl-C reaches only this script, which then stops each child once.
    serve = [server_command, "serve", "--listen", args.grpc_listen, "--database", database]
    serve += ["--tokens", str(tokens), "--metrics-listen", args.metrics_listen]
    bridge_command = [executable("checkpoint-rest-bridge"), "--listen", args.rest_listen]
    bridge_command += ["--upstream", local_address(args.grpc_listen)]
    bridge_command += ["--metrics-listen", args.rest_metrics_listen]
    children: list[subprocess.Popen[bytes]] = []
    parent = os.getpid()
    try:
        for command in (serve, bridge_command):
            children.append(
                subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=lambda: die_with_parent(parent),  # noqa: PLW1509 (no threads here)
                )
            )
        return supervise(args, token, children, stopping)
    finally:
        stop(children)


def supervise(
    args: argparse.Namespace,
    token: str,
    children: list[subprocess.Popen[bytes]],
    stopping: list[int],
) -> int:
    """Wait for readiness, print the banner, then run until a stop reason; the exit status."""
    grpc_address, rest_address = local_address(args.grpc_listen), local_address(args.rest_listen)
    names = {children[0].pid: "checkpoint-server", children[1].pid: "checkpoint-rest-bridge"}
    deadline = time.monotonic() + READY_TIMEOUT
    while not ready(f"http://{rest_address}/readyz"):
        dead = [c for c in children if c.poll() is not None]
        if stopping or output_closed():
            return 0
        if dead or time.monotonic() > deadline:
            why = (
                f"{names[dead[0].pid]} exited with status {dead[0].returncode} "
                f"(is {args.grpc_listen}, {args.rest_listen}, {args.metrics_listen} or "
                f"{args.rest_metrics_listen} already in use?)"
                if dead
                else f"not ready within {READY_TIMEOUT:g} s"
            )
            say(f"run_demo: {why}", error=True)
            return 1
        time.sleep(0.1)

    metrics = (local_address(args.metrics_listen), local_address(args.rest_metrics_listen))
    say(banner(token, grpc_address, rest_address, args.dir, metrics))
    while not stopping and not output_closed():
        dead = [c for c in children if c.poll() is not None]
        if dead:
            say(
                f"run_demo: {names[dead[0].pid]} exited with status {dead[0].returncode}; "
                "stopping the other",
                error=True,
            )
            return 1
        time.sleep(0.2)
    say("run_demo: stopping both servers")
    stop(children)
    say("run_demo: stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
