"""Fixtures: the test-only EchoService compiled at test time, its echo server, and its bridge."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc_tools
import httpx
import pytest

from tests.e2e import start, start_bridge

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


@pytest.fixture(scope="session")
def echo_descriptors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_protos("testing/v1/echo.proto", tmp_path_factory.mktemp("echo"))


@pytest.fixture(scope="session")
def echo_upstream(
    echo_descriptors: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The echo server for EchoService, on a free port."""
    logs = tmp_path_factory.mktemp("echo-logs")
    server = start(
        "echo-server",
        [sys.executable, str(HERE / "echo_server.py"), str(echo_descriptors), SERVICE],
        logs,
    )
    try:
        line = server.wait_for_output(re.compile(r"port \d+"))
        yield f"127.0.0.1:{line.split()[1]}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def echo_http(
    echo_descriptors: Path, echo_upstream: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """An HTTP client for a bridge exposing EchoService (it has no health service: /healthz)."""
    extra = ["--descriptor-set", str(echo_descriptors), "--service", SERVICE, "--timeout", "5"]
    bridge = start_bridge(
        "echo-bridge", tmp_path_factory.mktemp("echo-bridge"), echo_upstream, extra, "/healthz"
    )
    try:
        with httpx.Client(base_url=bridge.base_url, timeout=10) as client:
            yield client
    finally:
        bridge.process.stop()
