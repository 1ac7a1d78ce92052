"""What a row of `make bench` is, and how one is measured: a warm-up, then one bounded load per
concurrency, with the CPU each serving process (and its worker processes) spent per request."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import loads, procs
from bench import profile as spy

SETTLE = 0.5
"""Seconds between runs, for the requests still in flight when a load generator stops."""
INTERLEAVED_ROUNDS = 4
"""Rounds per concurrency of rows measured in turn (each round a quarter of the run's time)."""


@dataclass(frozen=True)
class Settings:
    seconds: float
    warmup: float
    concurrencies: tuple[int, ...]
    small: int
    large: int
    profile: bool
    out_dir: Path
    cache_dir: Path
    work_dir: Path
    postgres: str = ""
    """A PostgreSQL URL for the PostgreSQL row; empty leaves the row out."""


@dataclass
class Row:
    key: str
    label: str
    kind: str
    """grpc or rest: which baselines it is compared with."""
    results: dict[int, loads.LoadResult] = field(default_factory=dict)
    cpu_us: dict[int, dict[str, float]] = field(default_factory=dict)
    """Per concurrency: CPU microseconds per request of each process of the row."""
    worker_shares: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    """Per concurrency: for each process of the row with 2 or more workers, each worker's share
    of their CPU (1 / N each when the kernel spread the connections evenly)."""


@dataclass
class Target:
    """What a row loads: a gRPC frame or a REST URL, and the processes that serve it."""

    url: str
    serving: list[procs.Proc]
    frame: Path | None = None
    response_bytes: int = 0
    h2c: bool = False
    """A REST URL loaded over HTTP/2 (h2load; h2c, or h2 by ALPN for https) instead of wrk."""
    streams: int = 1
    """With h2c: requests in flight per connection (h2load -m), the concurrency spread over
    concurrency / streams connections; 1 gives HTTP/1.1's shape, a connection per request."""


class Bench:
    """The rows measured so far, with the memory, profiles and notes that go with them."""

    def __init__(self, settings: Settings, token: str) -> None:
        self.settings, self.token = settings, token
        self.rows: list[Row] = []
        self.memory: dict[str, dict[str, int]] = {}
        self.profiles: dict[str, list[tuple[str, float]]] = {}
        self.notes: list[str] = []

    def _load(self, target: Target, concurrency: int, seconds: float) -> loads.LoadResult:
        s, auth = self.settings, {"Authorization": f"Bearer {self.token}"}
        if target.frame is not None:
            return loads.h2load(
                target.url,
                concurrency=concurrency,
                seconds=seconds,
                frame_file=target.frame,
                response_bytes=target.response_bytes,
                headers=auth,
                work_dir=s.work_dir,
            )
        if target.h2c:
            return loads.h2load_rest(
                target.url,
                concurrency=concurrency,
                seconds=seconds,
                headers=auth,
                work_dir=s.work_dir,
                streams=target.streams,
            )
        return loads.wrk(
            target.url, concurrency=concurrency, seconds=seconds, headers=auth, work_dir=s.work_dir
        )

    def measure(
        self,
        key: str,
        label: str,
        kind: str,
        target: Target,
        concurrencies: Sequence[int] | None = None,
    ) -> Row:
        """Warm up, then one run per concurrency (the settings' unless given), with each serving
        process's CPU per request: a row compared with nothing, one round of its own."""
        return self.measure_interleaved([(key, label, kind, target)], 1, concurrencies)[0]

    def measure_interleaved(
        self,
        rows: Sequence[tuple[str, str, str, Target]],
        rounds: int = INTERLEAVED_ROUNDS,
        concurrencies: Sequence[int] | None = None,
    ) -> list[Row]:
        """Rows that are compared with each other (key, label, kind, target; their processes
        all started), measured in alternating rounds: per concurrency, `rounds` loads of
        seconds / rounds each, in turn, the order reversed every other round, so a neighbour's
        burst on a shared machine falls on all of them alike instead of on whichever ran then.

        A row's figures are its rounds together: requests and CPU summed (so req/s and CPU per
        request are over all its time), percentiles the median of its rounds'. Concurrencies
        are the settings' unless given.
        """
        made = [Row(key, label, kind) for key, label, kind, _ in rows]
        how = f" (interleaved, {rounds} rounds)" if rounds > 1 else ""
        for _, label, _, target in rows:
            print(f"bench: {label}{how}", file=sys.stderr, flush=True)
            self._load(target, 16, self.settings.warmup)
        share = self.settings.seconds / rounds
        for concurrency in concurrencies or self.settings.concurrencies:
            results: list[list[loads.LoadResult]] = [[] for _ in rows]
            cpu: list[dict[str, float]] = [{} for _ in rows]
            workers: list[dict[str, dict[int, float]]] = [{} for _ in rows]
            for turn in range(rounds):
                order = range(len(rows)) if turn % 2 == 0 else range(len(rows) - 1, -1, -1)
                for index in order:
                    target = rows[index][3]
                    time.sleep(SETTLE)
                    before = {p.name: p.cpu_seconds() for p in target.serving}
                    workers_before = {p.name: p.worker_cpu_seconds() for p in target.serving}
                    results[index].append(self._load(target, concurrency, share))
                    for p in target.serving:
                        cpu[index][p.name] = cpu[index].get(p.name, 0.0) + (
                            p.cpu_seconds() - before[p.name]
                        )
                        spent = workers[index].setdefault(p.name, {})
                        for pid, seconds in p.worker_cpu_seconds().items():
                            if pid in workers_before[p.name]:
                                gained = seconds - workers_before[p.name][pid]
                                spent[pid] = spent.get(pid, 0.0) + gained
            for index, row in enumerate(made):
                result = loads.combine(results[index])
                row.results[concurrency] = result
                requests = max(result.requests, 1)
                row.cpu_us[concurrency] = {n: s * 1e6 / requests for n, s in cpu[index].items()}
                row.worker_shares[concurrency] = {
                    name: shares
                    for name, spent in workers[index].items()
                    if len(shares := _shares(dict.fromkeys(spent, 0.0), spent)) > 1
                }
                print(
                    f"bench:   {row.key} c={concurrency:<3} {result.rps:8.0f} req/s"
                    f"  p50 {result.p50_ms:.2f} ms  p99 {result.p99_ms:.2f} ms",
                    file=sys.stderr,
                    flush=True,
                )
        self.rows.extend(made)
        return made

    def profile(self, name: str, target: Target, sampled: Sequence[procs.Proc]) -> None:
        """One extra run at the highest concurrency with py-spy on each process in sampled."""
        executable = spy.py_spy()
        if executable is None:
            self.notes.append("--profile: py-spy is not installed (pip install py-spy)")
            return
        concurrency = max(self.settings.concurrencies)
        seconds = max(self.settings.seconds, 3.0)
        print(f"bench: profiling {name} at c={concurrency}", file=sys.stderr, flush=True)
        recordings = [
            spy.record(executable, f"{name}--{p.name}", p.pid, seconds, self.settings.out_dir)
            for p in sampled
        ]
        time.sleep(SETTLE)  # let py-spy attach, and the last run's tail drain
        self._load(target, concurrency, seconds)
        for recording in recordings:
            try:
                raw = recording.finish()
            except RuntimeError as exc:
                self.notes.append(str(exc))
                continue
            self.profiles[f"{recording.name}, self time"] = spy.top_self(raw)
            self.profiles[f"{recording.name}, project code inclusive"] = spy.top_project(raw)


def cpu_per_request(
    processes: Sequence[procs.Proc], run: Callable[[], loads.LoadResult]
) -> tuple[loads.LoadResult, list[float]]:
    """run (one bounded load) after SETTLE, and each process's CPU microseconds per request it
    served: the figure the A/B tools (bench.edge_ab, bench.connections_ab) compare."""
    time.sleep(SETTLE)
    before = [p.cpu_seconds() for p in processes]
    done = run()
    served = max(done.requests, 1)
    spent = [(p.cpu_seconds() - b) * 1e6 / served for p, b in zip(processes, before, strict=True)]
    return done, spent


def _shares(before: dict[int, float], after: dict[int, float]) -> list[float]:
    """Each worker's share of the CPU its group spent between before and after."""
    spent = [after[pid] - before[pid] for pid in before if pid in after]
    total = sum(spent)
    return [round(part / total, 3) for part in spent] if total > 0 else []


def row_data(row: Row) -> dict[str, object]:
    """A row as the report's JSON holds it."""
    return {
        "key": row.key,
        "label": row.label,
        "kind": row.kind,
        "runs": [
            {
                **result.as_dict(),
                "cpu_us_per_request": row.cpu_us[c],
                "worker_cpu_shares": row.worker_shares.get(c, {}),
            }
            for c, result in row.results.items()
        ],
    }
