"""`make run`'s runner takes its servers with it, whatever ends it (issue: orphaned servers).

Each case starts scripts/run_demo.py on free ports, ends it one way, and checks that both servers
are gone: both ports closed, and no process left whose command line names the run's directory
(the runner's and the gRPC server's do) or the bridge's listen address.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e import REPO, free_port
from tests.e2e.test_demo import port_open

BANNER_END = re.compile(rb"Ctrl-C stops both servers\.\n=+\n")
GONE_TIMEOUT = 20.0


def _processes_naming(*markers: str) -> list[int]:
    """Pids of processes whose command line contains one of markers."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if any(marker.encode() in cmdline for marker in markers):
            found.append(int(entry.name))
    return found


def _start(run_dir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """The runner with its stdout on a pipe we hold, returned once the banner is printed."""
    grpc, rest = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    args = [sys.executable, str(REPO / "scripts" / "run_demo.py"), "--dir", str(run_dir)]
    runner = subprocess.Popen(
        [*args, "--grpc-listen", grpc, "--rest-listen", rest],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    if runner.stdout is None:
        raise RuntimeError("no stdout pipe")
    seen = b""
    deadline = time.monotonic() + 40
    os.set_blocking(runner.stdout.fileno(), False)
    while not BANNER_END.search(seen):
        if runner.poll() is not None or time.monotonic() > deadline:
            runner.kill()
            raise RuntimeError(f"run_demo did not print its banner:\n{seen.decode()}")
        chunk = runner.stdout.read()
        seen += chunk or b""
        time.sleep(0.05)
    return runner, grpc, rest


def _markers(run_dir: Path, rest: str) -> tuple[str, str]:
    return str(run_dir), f"--listen {rest}"


def _wait_gone(run_dir: Path, grpc: str, rest: str) -> None:
    deadline = time.monotonic() + GONE_TIMEOUT
    while True:
        left = _processes_naming(*_markers(run_dir, rest))
        open_ports = [a for a in (grpc, rest) if port_open(a)]
        if not left and not open_ports:
            return
        if time.monotonic() > deadline:
            for pid in left:
                os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"still running: pids {left}, ports {open_ports}")
        time.sleep(0.1)


def _hangup(runner: subprocess.Popen[bytes]) -> None:
    runner.send_signal(signal.SIGHUP)


def _kill(runner: subprocess.Popen[bytes]) -> None:
    runner.kill()


def _close_reader(runner: subprocess.Popen[bytes]) -> None:
    if runner.stdout is not None:
        runner.stdout.close()


def _ctrl_c_after_tee_died(runner: subprocess.Popen[bytes]) -> None:
    _close_reader(runner)
    runner.send_signal(signal.SIGINT)


@pytest.mark.parametrize(
    "end",
    [
        pytest.param(_hangup, id="sighup-terminal-closed"),
        pytest.param(_kill, id="sigkill-runner-crash"),
        pytest.param(_close_reader, id="broken-pipe"),
        pytest.param(_ctrl_c_after_tee_died, id="ctrl-c-under-tee"),
    ],
)
def test_whatever_ends_the_runner_ends_both_servers(
    tmp_path: Path, end: Callable[[subprocess.Popen[bytes]], None]
) -> None:
    """After SIGHUP, SIGKILL, a closed output pipe or Ctrl-C with a dead tee, no server is left."""
    run_dir = tmp_path / "run"
    runner, grpc, rest = _start(run_dir)
    try:
        assert port_open(grpc)
        assert port_open(rest)
        assert len(_processes_naming(*_markers(run_dir, rest))) == 3  # the runner, both servers
        end(runner)
        runner.wait(timeout=GONE_TIMEOUT)
        _wait_gone(run_dir, grpc, rest)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        if runner.stdout is not None and not runner.stdout.closed:
            runner.stdout.close()
