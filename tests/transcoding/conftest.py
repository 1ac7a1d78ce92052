"""Fixtures: the test-only EchoService compiled at test time, its echo server, and its bridge."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc_tools
import httpx
import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
SERVICE = "testing.v1.EchoService"


def compile_protos(proto: str, out: Path) -> Path:
    """Compile a proto under tests/transcoding/protos into a descriptor set (with imports)."""
    target = out / (Path(proto).stem + ".binpb")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{HERE / 'protos'}",
            f"-I{ROOT / 'protos'}",
            f"-I{Path(grpc_tools.__file__).parent / '_proto'}",
            f"--descriptor_set_out={target}",
            "--include_imports",
            "--include_source_info",
            proto,
        ],
        check=True,
        timeout=60,
    )
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL after 10 s; closes the pipes."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()


def start_bridge(
    descriptor_set: Path, service: str, upstream: str
) -> tuple[subprocess.Popen[str], str]:
    """Start checkpoint-rest-bridge for a service and wait until it answers /healthz."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rest_bridge",
            "--listen",
            f"127.0.0.1:{port}",
            "--upstream",
            upstream,
            "--descriptor-set",
            str(descriptor_set),
            "--service",
            service,
            "--timeout",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bridge exited: {process.stdout.read() if process.stdout else ''}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.05)
    stop(process)
    raise RuntimeError("bridge did not start within 20 s")


@pytest.fixture(scope="session")
def echo_descriptors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_protos("testing/v1/echo.proto", tmp_path_factory.mktemp("echo"))


@pytest.fixture(scope="session")
def echo_upstream(echo_descriptors: Path) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.transcoding.echo_server", str(echo_descriptors), SERVICE],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("port "):
        stop(process)
        raise RuntimeError(f"echo server did not start: {line!r}")
    yield f"127.0.0.1:{line.split()[1]}"
    stop(process)


@pytest.fixture(scope="session")
def echo_http(echo_descriptors: Path, echo_upstream: str) -> Iterator[httpx.Client]:
    process, base = start_bridge(echo_descriptors, SERVICE, echo_upstream)
    with httpx.Client(base_url=base, timeout=10) as client:
        yield client
    stop(process)
