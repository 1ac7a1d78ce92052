"""`--workers N`: N copies of a console script on the same ports, under one small supervisor.

Python serves one core per process, so both commands scale out on one machine the way gunicorn
and grpcio's multiprocessing example do: every worker binds the same ports with SO_REUSEPORT and
the kernel spreads connections over them. The supervisor (the process the user started):

- fixes the ports first: a `:0` port is bound once here with SO_REUSEPORT (and held, not
  listened on), and every worker is told the concrete address;
- starts each worker as a fresh process of the same command (never a fork: grpcio does not
  survive fork), with PR_SET_PDEATHSIG so no worker outlives it, however it ends;
- restarts a worker that dies after it had served, with a doubling back-off; a worker that dies
  before it ever served is a start-up failure: everything stops with its exit status;
- on SIGTERM or SIGINT asks every worker to drain (SIGTERM: each turns NOT_SERVING, then
  finishes its in-flight calls within --grace) and exits 0; SIGHUP is passed on to every worker,
  for which it means "reload" (the bridge's schema, certificates), as for a single process.

It lives in the bridge because both entry points may import the bridge (see options.py). The
workers share a small state file (WorkerGroup) in which each marks itself serving, so a health
probe on any worker reports ready only while every worker serves.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)

INDEX_ENV = "CHECKPOINT_WORKER_INDEX"
"""Set in a worker's environment: its number (0..N-1). A worker never supervises."""
STATE_ENV = "CHECKPOINT_WORKER_STATE"
"""The group's state file, for the workers."""
SHARED_DIR_ENV = "CHECKPOINT_WORKER_DIR"
"""A directory private to this supervisor, for state the workers share (rate-limit buckets)."""
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 10.0
STABLE_SECONDS = 30.0
"""A worker that served this long before dying is restarted after the first back-off again."""
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def worker_count(requested: int) -> int:
    """--workers as a number of processes: 0 means one per core."""
    return requested if requested > 0 else os.cpu_count() or 1


def in_worker() -> bool:
    """True in a process the supervisor started."""
    return INDEX_ENV in os.environ


class WorkerGroup:
    """One byte per worker in a shared file: 1 while it serves. Readers see the whole group."""

    def __init__(self, path: Path, size: int, index: int | None) -> None:
        self.path, self.size, self.index = path, size, index
        with path.open("r+b") as file:
            self._map = mmap.mmap(file.fileno(), size)

    @classmethod
    def create(cls, directory: Path, size: int) -> WorkerGroup:
        path = directory / "workers"
        path.write_bytes(bytes(size))
        return cls(path, size, None)

    @classmethod
    def from_environment(cls) -> WorkerGroup | None:
        """The group this process is a worker of, or None outside a group."""
        path, index = os.environ.get(STATE_ENV), os.environ.get(INDEX_ENV)
        if not path or index is None:
            return None
        size = Path(path).stat().st_size
        return cls(Path(path), size, int(index))

    def mark(self, serving: bool, index: int | None = None) -> None:
        """Record that a worker (this one by default) serves, or stopped serving."""
        slot = self.index if index is None else index
        if slot is not None:
            self._map[slot] = 1 if serving else 0

    def serving(self, index: int) -> bool:
        return bool(self._map[index])

    def all_serving(self) -> bool:
        return all(self._map[:])


def reserve(address: str) -> tuple[str, socket.socket]:
    """HOST:PORT with a concrete port, and the SO_REUSEPORT socket holding it (not listening).

    Raises:
        RuntimeError: the address is not HOST:PORT or cannot be bound.
    """
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise RuntimeError(f"listen address must be HOST:PORT, got {address!r}")
    bare = host.strip("[]")
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((bare, int(port)))
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"cannot listen on {address}: {exc}") from exc
    return f"{host}:{sock.getsockname()[1]}", sock


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = FIRST_BACKOFF
    restart_at: float | None = None
    served: bool = field(default=False)
    """Whether this slot's worker ever marked itself serving: a death after that is restarted,
    a death before it is a start-up failure."""


class Supervisor:
    """Runs `argv` N times (see the module docstring); run() is the process's exit status."""

    def __init__(self, argv: Sequence[str], workers: int, grace: float, name: str) -> None:
        self.argv, self.count, self.grace, self.name = list(argv), workers, grace, name
        self._directory = Path(tempfile.mkdtemp(prefix="checkpoint-workers-"))
        self.group = WorkerGroup.create(self._directory, workers)
        self._workers = [_Worker(i) for i in range(workers)]
        self._stopping: list[int] = []

    def environment(self, index: int) -> dict[str, str]:
        env = dict(os.environ)
        env[INDEX_ENV] = str(index)
        env[STATE_ENV] = str(self.group.path)
        env[SHARED_DIR_ENV] = str(self._directory)
        return env

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        signal.signal(signal.SIGHUP, self._forward)
        try:
            for worker in self._workers:
                self._start(worker)
            pids = ", ".join(str(w.process.pid) for w in self._workers if w.process)
            print(f"{self.name}: supervising {self.count} workers (pids {pids})", flush=True)
            return self._watch()
        finally:
            self._stop_all()
            with contextlib.suppress(OSError):
                for path in self._directory.iterdir():
                    path.unlink()
                self._directory.rmdir()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping.append(signum)

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        for worker in self._workers:
            if worker.process is not None and worker.process.poll() is None:
                worker.process.send_signal(signum)

    def _start(self, worker: _Worker) -> None:
        parent = os.getpid()
        worker.process = subprocess.Popen(  # noqa: S603 (our own command line, re-run)
            self.argv,
            env=self.environment(worker.index),
            stdin=subprocess.DEVNULL,
            preexec_fn=lambda: _die_with_parent(parent),  # noqa: PLW1509 (no threads here)
        )
        worker.started, worker.restart_at = time.monotonic(), None

    def _watch(self) -> int:
        while not self._stopping:
            now = time.monotonic()
            for worker in self._workers:
                if self.group.serving(worker.index):
                    worker.served = True
                process = worker.process
                if process is not None and process.poll() is not None:
                    self.group.mark(False, worker.index)
                    if not worker.served:
                        log.error(
                            "%s: worker %d exited with status %s before it served; stopping",
                            self.name,
                            worker.index,
                            process.returncode,
                        )
                        return process.returncode or 1
                    if now - worker.started > STABLE_SECONDS:
                        worker.backoff = FIRST_BACKOFF
                    worker.restart_at = now + worker.backoff
                    print(
                        f"{self.name}: worker {worker.index} (pid {process.pid}) exited with "
                        f"status {process.returncode}; restarting in {worker.backoff:g} s",
                        file=sys.stderr,
                        flush=True,
                    )
                    worker.backoff = min(MAX_BACKOFF, worker.backoff * 2)
                    worker.process = None
                restart_at = worker.restart_at
                if worker.process is None and restart_at is not None and now >= restart_at:
                    self._start(worker)
            time.sleep(0.05)
        return 0

    def _stop_all(self) -> None:
        """SIGTERM every worker (each drains within --grace), SIGKILL what outlives that."""
        running = [w.process for w in self._workers if w.process and w.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace + 5.0
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _die_with_parent(parent: int) -> None:
    """In a child before exec: SIGTERM when the supervisor dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)


def run_workers(
    module: str,
    argv: Sequence[str],
    addresses: Sequence[tuple[str, str]],
    *,
    count: int,
    grace: float,
    name: str,
) -> int:
    """Run `python -m module argv` count times on the same ports: each (flag, HOST:PORT) of
    addresses that is set is bound here first and passed on with its concrete port.

    Raises:
        RuntimeError: an address is not HOST:PORT or cannot be bound.
    """
    held: list[socket.socket] = []
    overrides: list[str] = []
    try:
        for flag, address in addresses:
            if address:
                concrete, sock = reserve(address)
                held.append(sock)
                overrides += [flag, concrete]
        command = [sys.executable, "-m", module, *argv, *overrides]
        return Supervisor(command, count, grace, name).run()
    finally:
        for sock in held:
            sock.close()
