"""Sampling profiles of the benchmarked processes with py-spy, when it is installed.

py-spy is not a dependency: `make bench BENCH_ARGS=--profile` uses the one in the virtualenv or
on PATH (`pip install py-spy`) and says so when there is none. A profile is recorded during a run
of its own, after the measured ones, so sampling never perturbs a figure in the table.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench import REPO

SAMPLE_RATE = 250
"""Samples per second."""


def py_spy() -> str | None:
    """The py-spy executable: beside the interpreter, else on PATH, else None."""
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


@dataclass
class Recording:
    name: str
    popen: subprocess.Popen[bytes]
    raw: Path
    seconds: float

    def finish(self) -> Path:
        """Wait (bounded) for py-spy to write its file; the path of the collapsed stacks.

        Raises:
            RuntimeError: py-spy failed or wrote nothing.
        """
        try:
            _, err = self.popen.communicate(timeout=self.seconds + 30)
        except subprocess.TimeoutExpired as exc:
            self.popen.kill()
            raise RuntimeError(f"py-spy for {self.name} did not finish") from exc
        if self.popen.returncode != 0 or not self.raw.exists():
            raise RuntimeError(f"py-spy for {self.name} failed: {err.decode(errors='replace')}")
        return self.raw


def record(executable: str, name: str, pid: int, seconds: float, out_dir: Path) -> Recording:
    """Start sampling pid for seconds (all threads and child processes, as a supervisor's
    workers, Python frames, active samples only)."""
    raw = out_dir / f"profile-{name}.txt"
    raw.unlink(missing_ok=True)
    args = [executable, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
    args += ["--rate", str(SAMPLE_RATE), "--format", "raw", "--output", str(raw), "--nonblocking"]
    args.append("--subprocesses")
    popen = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return Recording(name=name, popen=popen, raw=raw, seconds=seconds)


def _samples(raw: Path) -> list[tuple[list[str], int]]:
    """(frames root first, as "function (file)", samples) per line of py-spy's raw output."""
    out: list[tuple[list[str], int]] = []
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        frames = []
        for frame in stack.split(";"):
            function, _, where = frame.partition(" (")
            frames.append(f"{function} ({_short(where.rsplit(':', 1)[0])})")
        out.append((frames, int(samples)))
    return out


def top_self(raw: Path, count: int = 10) -> list[tuple[str, float]]:
    """The functions with the most self time (leaf-frame samples), as (frame, share of samples).

    A frame is "function (file)": lines of one function are added up. Without --native, time in
    compiled code (grpcio's Cython core, protobuf's upb, sockets) is the self time of the Python
    frame that called it: Handle._run and Thread.run stand for grpcio's event callbacks and
    poller thread, UnaryUnaryCall._invoke for a client call, transport.write for send().
    """
    samples = _samples(raw)
    total = sum(n for _, n in samples)
    leaves: Counter[str] = Counter()
    for frames, n in samples:
        leaves[frames[-1]] += n
    return [(frame, n / total) for frame, n in leaves.most_common(count)] if total else []


def top_project(raw: Path, count: int = 10) -> list[tuple[str, float]]:
    """The project's own functions (server/, rest_bridge/) by inclusive share of samples."""
    samples = _samples(raw)
    total = sum(n for _, n in samples)
    inclusive: Counter[str] = Counter()
    for frames, n in samples:
        for frame in set(frames):
            mine = "(server/" in frame or "(rest_bridge/" in frame
            if mine and "__main__.py)" not in frame:  # main() holds every sample of its thread
                inclusive[frame] += n
    return [(frame, n / total) for frame, n in inclusive.most_common(count)] if total else []


def _short(file: str) -> str:
    """A file path relative to site-packages, the standard library or the project."""
    if "site-packages/" in file:
        return file.split("site-packages/", 1)[1]
    if file.startswith(f"{REPO}/"):
        return file[len(str(REPO)) + 1 :]
    found = re.search(r"python3\.\d+/(.*)", file)
    return found.group(1) if found else file
