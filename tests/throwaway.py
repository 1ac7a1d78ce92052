"""What the throwaway servers of the test plugins share (tests/pg.py, tests/redis.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def missing(hint: str) -> NoReturn:
    """A server binary is missing: fail in CI (which must run every test), skip elsewhere."""
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(hint, pytrace=False)
    pytest.skip(hint)


def read_log(path: Path) -> str:
    """A server's log for an error message; "(no log)" when there is none."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return "(no log)"


def stop_process(
    process: subprocess.Popen[bytes] | None, sig: signal.Signals, timeout: float
) -> None:
    """Send sig, then SIGKILL if the process has not ended within timeout seconds."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)
