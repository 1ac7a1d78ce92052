"""The processes a benchmark runs: started with logs in files, waited for, measured, stopped.

Every wait is bounded; every process is stopped with SIGTERM, then SIGKILL. CPU time and memory
come from /proc, so they are the process's own figures, not the load generator's view.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def script(name: str) -> str:
    """A console script of this project: the one beside the running interpreter."""
    candidate = Path(sys.executable).parent / name
    if not candidate.exists():
        raise RuntimeError(f"{candidate} is missing: run `make setup`")
    return str(candidate)


def free_port() -> int:
    """A 127.0.0.1 port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Proc:
    """A started process whose stdout and stderr go to files, so no pipe can fill up."""

    name: str
    popen: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self) -> str:
        out = self.stdout.read_text(errors="replace")[-2000:]
        err = self.stderr.read_text(errors="replace")[-3000:]
        return f"--- {self.name} stdout\n{out}\n--- {self.name} stderr\n{err}"

    def wait_for(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        """The first match of pattern in stdout, polled until timeout.

        Raises:
            RuntimeError: the process exited or printed no match in time.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.stdout.read_text(errors="replace"))
            if found is not None:
                return found
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.popen.returncode}\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} printed no {pattern!r}\n{self.tail()}")
            time.sleep(0.05)

    def wait_http(self, url: str, timeout: float = START_TIMEOUT) -> None:
        """Poll url until it answers 200.

        Raises:
            RuntimeError: the process exited or url never answered 200 in time.
        """
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2.0) as reply:  # noqa: S310 (http://127.0.0.1)
                    if reply.status == 200:
                        return
                    last = str(reply.status)
            except (OSError, urllib.error.URLError) as exc:
                last = repr(exc)
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.popen.returncode}\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} never answered 200 (last: {last})\n{self.tail()}")
            time.sleep(0.05)

    def wait_count(self, pattern: str, count: int, timeout: float = START_TIMEOUT) -> None:
        """Poll stdout until pattern occurs count times (once per worker of a --workers N).

        Raises:
            RuntimeError: the process exited or printed fewer matches in time.
        """
        deadline = time.monotonic() + timeout
        while len(re.findall(pattern, self.stdout.read_text(errors="replace"))) < count:
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.popen.returncode}\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} printed {pattern!r} fewer than {count} times\n{self.tail()}"
                )
            time.sleep(0.05)

    def cpu_seconds(self) -> float:
        """User + system CPU time the process and its live descendants have used so far (all
        their threads): a supervisor's workers serve the row, so their CPU is the row's too."""
        return _tree_cpu(_stats(), self.pid)

    def worker_cpu_seconds(self) -> dict[int, float]:
        """CPU seconds so far of each child process (a supervisor's workers) with its own
        descendants, by pid: how evenly the kernel spread the connections over the workers."""
        stats = _stats()
        return {pid: _tree_cpu(stats, pid) for pid, f in stats.items() if int(f[1]) == self.pid}

    def memory_kib(self) -> dict[str, int]:
        """VmRSS (resident now) and VmHWM (peak resident) in KiB."""
        found: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
        return found

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.popen.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait(timeout=STOP_TIMEOUT)


def connection_matrix(client: Proc, server: Proc, port: int) -> list[list[int]]:
    """How the client's established connections to local port spread over the server's
    processes: one row per client process (its workers, or itself without any), one column per
    server process (likewise), each the number of connections between the two. Both ends are
    matched by socket inode in /proc/PID/fd and by the client's port in /proc/net/tcp."""
    toward: dict[str, int] = {}
    """The server end's inode -> the client's port."""
    away: dict[str, int] = {}
    """The client end's inode -> its own port."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] != "01":
                    continue
                local = int(fields[1].rsplit(":", 1)[1], 16)
                remote = int(fields[2].rsplit(":", 1)[1], 16)
                if local == port:
                    toward[fields[9]] = remote
                elif remote == port:
                    away[fields[9]] = local
    stats = _stats()
    clients = [_sockets(pid) for pid in _workers(stats, client.pid)]
    servers = [_sockets(pid) for pid in _workers(stats, server.pid)]
    client_ports = [{away[i] for i in held if i in away} for held in clients]
    server_ports = [{toward[i] for i in held if i in toward} for held in servers]
    return [[len(mine & theirs) for theirs in server_ports] for mine in client_ports]


def _workers(stats: Mapping[int, list[str]], parent: int) -> list[int]:
    """parent's children (a supervisor's workers), or parent itself when it has none."""
    children = sorted(pid for pid, fields in stats.items() if int(fields[1]) == parent)
    return children or [parent]


def _sockets(pid: int) -> set[str]:
    """The socket inodes among pid's open files."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def _tree_cpu(stats: Mapping[int, list[str]], root: int) -> float:
    """CPU seconds of root and its descendants in stats (see _stats)."""
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        fields = stats.get(pid)
        if fields is None:
            continue
        # After the command name: ppid is field 4, utime 14, stime 15 (1-based, man 5 proc).
        total += int(fields[11]) + int(fields[12])
        pending += [child for child, f in stats.items() if int(f[1]) == pid]
    return total / _CLOCK_TICKS


def _stats() -> dict[int, list[str]]:
    """Every live process's /proc/PID/stat fields after the command name, by pid."""
    found: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:  # it exited meanwhile
                continue
            found[int(entry.name)] = text.rsplit(")", 1)[1].split()
    return found


def start(
    name: str, args: Sequence[str], log_dir: Path, env: Mapping[str, str] | None = None
) -> Proc:
    """Start args with stdout and stderr in log_dir/NAME.out and NAME.err."""
    log_dir.mkdir(parents=True, exist_ok=True)
    stdout, stderr = log_dir / f"{name}.out", log_dir / f"{name}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        popen = subprocess.Popen(
            list(args),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
    return Proc(name=name, popen=popen, stdout=stdout, stderr=stderr)
