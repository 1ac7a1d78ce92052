"""End-to-end tests: the real `checkpoint-server` and `checkpoint-rest-bridge` processes.

This module holds what the fixtures in tests/conftest.py and the tests share: starting the
installed console scripts as subprocesses on free 127.0.0.1 ports, waiting (bounded) until they
are ready, stopping them (SIGTERM, then SIGKILL), the seed checkpoints the suite imports, and the
check every HTTP response of the suite passes (the contract's envelopes, never `{"detail": ...}`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
from checkpoint.v1 import checkpoint_service_pb2 as svc
from grpc_health.v1 import health, health_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
COMMAND_TIMEOUT = 60.0

READ_SCOPE = "checkpoints:read"
WRITE_SCOPE = "checkpoints:write"

# error.code of every row of the contract's status table.
ERROR_CODES = frozenset(
    {
        "cancelled",
        "unknown",
        "invalid_argument",
        "deadline_exceeded",
        "not_found",
        "already_exists",
        "permission_denied",
        "resource_exhausted",
        "failed_precondition",
        "aborted",
        "out_of_range",
        "unimplemented",
        "internal",
        "unavailable",
        "data_loss",
        "unauthenticated",
    }
)

# The checkpoints every session starts with (imported with `checkpoint-server import`).
EXAMPLE_ID = "3f2b9c1e-8a4d-4c7b-9e21-5d6f7a8b9c01"
SPACED_ID = "7d0c5a2e-1b3f-4e6a-8c9d-0a1b2c3d4e5f"
HUGE_ID = "b5e1f0a9-6c2d-4b7e-a3f8-9d0e1c2b3a4f"
LONGEST_NAME = "n" * 128
MAX_INT64 = 2**63 - 1
ABOVE_DOUBLE = 2**53 + 1  # the first integer a float64 cannot hold
MAX_UINT32 = 2**32 - 1
SEED: list[dict[str, Any]] = [
    {
        "id": EXAMPLE_ID,
        "display_name": "example",
        "resources": {"limits": {"memory_mib": 2048}, "requests": {"memory_mib": 1024, "vcpus": 2}},
        "state": "ready",
        "create_time": "2026-01-15T10:00:00Z",
        "update_time": "2026-01-15T10:05:00Z",
    },
    {
        "id": SPACED_ID,
        "display_name": "my box",
        "resources": {"limits": {"memory_mib": 512}, "requests": {"memory_mib": 256, "vcpus": 1}},
        "state": "creating",
    },
    {
        "id": HUGE_ID,
        "display_name": "huge",
        "resources": {
            "limits": {"memory_mib": MAX_INT64},
            "requests": {"memory_mib": ABOVE_DOUBLE, "vcpus": MAX_UINT32},
        },
        "state": "deleting",
    },
    {
        "display_name": "pct%20name",
        "resources": {"limits": {"memory_mib": 8}, "requests": {"memory_mib": 8, "vcpus": 1}},
        "state": "failed",
    },
    {
        "display_name": "café",
        "resources": {"limits": {"memory_mib": 64}, "requests": {"memory_mib": 32, "vcpus": 1}},
        "state": "ready",
    },
    {
        "display_name": LONGEST_NAME,
        "resources": {"limits": {"memory_mib": 1}, "requests": {"memory_mib": 1, "vcpus": 1}},
        "state": "ready",
    },
]


def executable(name: str) -> str:
    """The installed console script `name`: beside the running interpreter, else on PATH."""
    candidate = BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed; run `make setup`")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_command(args: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> str:
    """Run a command to completion and return its stdout; fail with its stderr otherwise."""
    result = subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


def create_token(tokens: Path, name: str, scopes: Sequence[str]) -> str:
    """A new token made by `checkpoint-server token create`, as it prints it."""
    args = [executable("checkpoint-server"), "token", "create", "--tokens", str(tokens)]
    args += ["--name", name]
    for scope in scopes:
        args += ["--scope", scope]
    token = run_command(args).strip()
    assert token, "token create printed nothing"
    assert "\n" not in token, f"unexpected token output {token!r}"
    return token


def import_checkpoints(database: str, entries: list[dict[str, Any]], file: Path) -> None:
    """Load entries (REST data shape) with `checkpoint-server import`."""
    file.write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
    run_command([executable("checkpoint-server"), "import", "--database", database, str(file)])


@dataclass
class Process:
    """A started command whose stdout and stderr go to files, so no pipe can fill up."""

    name: str
    popen: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def output(self) -> str:
        """The end of what the process printed, for failure messages."""
        out = self.stdout.read_text(encoding="utf-8", errors="replace")
        err = self.stderr.read_text(encoding="utf-8", errors="replace")
        return f"--- stdout of {self.name}\n{out[-3000:]}\n--- stderr\n{err[-3000:]}"

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.popen.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait(timeout=STOP_TIMEOUT)

    def wait_for_output(self, pattern: re.Pattern[str], timeout: float = START_TIMEOUT) -> str:
        """The first match of pattern in the process's stdout, polled until timeout."""
        deadline = time.monotonic() + timeout
        while True:
            found = pattern.search(self.stdout.read_text(encoding="utf-8", errors="replace"))
            if found is not None:
                return found.group(0)
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.popen.returncode}\n{self.output()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} printed no {pattern.pattern!r}\n{self.output()}")
            time.sleep(0.05)

    def wait_for_http(self, url: str, timeout: float = START_TIMEOUT) -> None:
        """Poll url until it answers 200, failing fast when the process exits."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            try:
                response = httpx.get(url, timeout=2.0)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text}"
            except httpx.TransportError as exc:
                last = repr(exc)
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.popen.returncode}\n{self.output()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} never answered 200 (last: {last})\n{self.output()}")
            time.sleep(0.05)


def start(
    name: str, args: Sequence[str], log_dir: Path, env: Mapping[str, str] | None = None
) -> Process:
    """Start args with stdout and stderr in log_dir/NAME.out and NAME.err; env is added to
    this process's environment."""
    log_dir.mkdir(parents=True, exist_ok=True)
    stdout, stderr = log_dir / f"{name}.out", log_dir / f"{name}.err"
    environ = {**os.environ, **env} if env else None
    with stdout.open("wb") as out, stderr.open("wb") as err:
        popen = subprocess.Popen(
            list(args), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=environ
        )
    return Process(name=name, popen=popen, stdout=stdout, stderr=stderr)


@dataclass(frozen=True)
class Tokens:
    """The tokens file of a session and the three tokens in it."""

    path: Path
    read: str
    write: str
    both: str


@dataclass(frozen=True)
class GrpcServer:
    process: Process
    address: str
    """HOST:PORT the server prints after it binds."""


@dataclass(frozen=True)
class Bridge:
    process: Process
    base_url: str


_SERVING = re.compile(r"serving gRPC on (\S+:\d+)")


def start_server(
    name: str,
    log_dir: Path,
    database: str,
    tokens: Path,
    extra: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
) -> GrpcServer:
    """`checkpoint-server serve` on a free port, returned once it prints its address."""
    args = [executable("checkpoint-server"), "serve", "--listen", "127.0.0.1:0"]
    args += ["--database", database, "--tokens", str(tokens), "--grace", "1", *extra]
    process = start(name, args, log_dir, env)
    try:
        line = process.wait_for_output(_SERVING)
    except RuntimeError:
        process.stop()
        raise
    found = _SERVING.search(line)
    assert found is not None
    return GrpcServer(process=process, address=found.group(1))


def start_bridge(
    name: str,
    log_dir: Path,
    upstream: str,
    extra: Sequence[str] = (),
    ready: str = "/readyz",
    *,
    env: Mapping[str, str] | None = None,
) -> Bridge:
    """`checkpoint-rest-bridge` on a free port, returned once ready answers 200."""
    listen = f"127.0.0.1:{free_port()}"
    args = [executable("checkpoint-rest-bridge"), "--listen", listen, "--upstream", upstream]
    process = start(name, [*args, *extra], log_dir, env)
    base_url = f"http://{listen}"
    try:
        process.wait_for_http(base_url + ready)
    except RuntimeError:
        process.stop()
        raise
    return Bridge(process=process, base_url=base_url)


def check_envelope(response: httpx.Response) -> None:
    """Every bridge response is `{"data": ...}` or the contract's error envelope, never a
    framework `{"detail": ...}`; installed as an httpx response hook on the suite's clients."""
    response.read()
    if response.request.method == "HEAD":
        return
    assert response.headers.get("content-type", "").startswith("application/json"), response.text
    body = response.json()
    assert isinstance(body, dict), body
    assert "detail" not in body, body
    if response.url.path == "/openapi.json" and response.status_code == 200:
        return
    if response.status_code < 400:
        assert set(body) == {"data"}, body
        return
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict), body
    assert {"code", "message"} <= set(error) <= {"code", "message", "details"}, body
    assert error["code"] in ERROR_CODES, body
    assert isinstance(error["message"], str), body
    assert error["message"], body
    for detail in error.get("details", []):
        assert set(detail) == {"field", "description"}, body


def http_client(base_url: str) -> httpx.Client:
    """A client for a bridge that checks every response with check_envelope."""
    return httpx.Client(
        base_url=base_url,
        timeout=10.0,
        follow_redirects=False,
        event_hooks={"response": [check_envelope]},
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


SERVICE = "checkpoint.v1.CheckpointService"
GetCheckpoint = Callable[
    [svc.GetCheckpointRequest, grpc.ServicerContext], svc.GetCheckpointResponse
]


class StandInUpstream:
    """A gRPC server standing in for checkpoint-server in front of a bridge: SERVING by health,
    with a GetCheckpoint of the test's choosing (slow, holding, recording)."""

    def __init__(self, get_checkpoint: GetCheckpoint, workers: int = 8) -> None:
        self._server = grpc.server(ThreadPoolExecutor(max_workers=workers))
        handler = grpc.unary_unary_rpc_method_handler(
            get_checkpoint,
            request_deserializer=svc.GetCheckpointRequest.FromString,
            response_serializer=svc.GetCheckpointResponse.SerializeToString,
        )
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"GetCheckpoint": handler}),)
        )
        health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), self._server)  # type: ignore[no-untyped-call]
        self.address = f"127.0.0.1:{self._server.add_insecure_port('127.0.0.1:0')}"
        self._server.start()

    def stop(self, wait: float = 5.0) -> None:
        """Stop at once, waiting at most `wait` seconds for held calls to end."""
        self._server.stop(0).wait(wait)


def hold(context: grpc.ServicerContext, seconds: float) -> None:
    """Block a stand-in's handler until its caller gives up or seconds pass."""
    deadline = time.monotonic() + seconds
    while context.is_active() and time.monotonic() < deadline:
        time.sleep(0.01)
