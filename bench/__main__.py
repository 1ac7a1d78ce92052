"""`make bench` (python -m bench): load the real processes, print and save one table.

Runs, one at a time (the machine has 2 cores), each at concurrency 1, 16 and 64 unless noted,
in groups (--only picks some):

    baselines  no-op grpcio servicer, same server options         h2load
               constant JSON, Starlette under the bridge's uvicorn  wrk
    service    gRPC GetCheckpoint by id and by name (auth + store)  h2load -> checkpoint-server
               REST GetCheckpoint by id and by name, bridge         wrk -> bridge -> server
               REST GetCheckpoint by id, bridge with --reflect      wrk -> bridge -> server
               REST GetCheckpoint by id and by name in-process      wrk -> server --rest-listen
    metrics    the gRPC, bridge and in-process rows by id with no access lines and no metrics
               (-bare), and with access lines and --metrics-listen (a scraper polling /metrics
               every second), for the cost of logs and metrics (the plain rows log access lines
               at info, as the default does); both set-ups run side by side and each row is
               measured in alternating rounds with its twin (Bench.measure_interleaved)
    traced     REST by id, both doors, traces exported (100 %)      wrk (bench/traced.py)
    edge       REST by id, bridge over HTTP/1.1, h2c and HTTPS      wrk / h2load (edge_rows.py)
    workers    1 and 2 worker processes of every mode, and grpc-gateway (Go) -> server, at
               concurrency 64 only, with issue 12's targets computed from them (worker_rows.py)
    postgres   gRPC GetCheckpoint by id on PostgreSQL (with --postgres)
    large      gRPC GetCheckpoint by id on a store of 10^6            h2load -> checkpoint-server
    watch      200 watchers at 50 writes/s, with their own baseline (bench/watch.py)

Servers run with --rate-limit 0. Figures are requests/s, p50 and p99 latency, the ratio of
requests/s to the no-op gRPC baseline (and, for REST rows, to the constant-JSON one) at the same
concurrency, and the CPU each process of the row (with its worker processes) spent per request
(from /proc). The table, the targets, the memory of the server on each store, the serialization
cost of the in-process path and, with --profile, the top self-time functions of each process go
to stdout and, with the raw figures as JSON, to bench/results/. It also times the route build
from reflection of a generated 50-method service (bench/reflect.py). It is a benchmark, not a
test: CI never runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import (
    REPO,
    edge_rows,
    grpc_gateway,
    loads,
    reflect,
    report,
    service_rows,
    targets,
    watch,
    worker_rows,
)
from bench.metrics_cost import instrumentation_cost
from bench.otlp_encoding import encoding_cost
from bench.rows import Bench, Settings, Target, row_data
from bench.seed import SeededStore, seeded_store
from bench.serialization import serialization_cost
from bench.traced import traced_rows
from server.tokens import READ_SCOPE, create_token

RESULTS = REPO / "bench" / "results"
SMALL, LARGE = 10**3, 10**6
GROUPS = ("baselines", "service", "metrics", "traced", "edge", "workers", "postgres", "large")
"""The groups of rows, in the order they run; `watch` runs last, after the report is written."""


def run(
    settings: Settings, groups: Sequence[str] = GROUPS, gateway: Path | None = None
) -> dict[str, Any]:
    """The rows of groups, one process group at a time; the report as data.

    Raises:
        RuntimeError: the workers group without a gateway binary, or a row that failed.
    """
    s = settings
    s.work_dir.mkdir(parents=True, exist_ok=True)
    small = seeded_store(s.cache_dir, s.small)
    stores = [small]
    tokens = s.work_dir / "tokens.json"
    tokens.unlink(missing_ok=True)
    bench = Bench(s, create_token(tokens, "bench", [READ_SCOPE]))

    def workers() -> None:
        if gateway is None:
            raise RuntimeError("the workers rows need the grpc-gateway binary")
        worker_rows.measure(bench, small, tokens, gateway)

    def postgres() -> None:
        if s.postgres:
            service_rows.postgres_store(bench, s.postgres, s.small, tokens)

    def large() -> None:
        stores.append(seeded_store(s.cache_dir, s.large))
        service_rows.large_store(bench, stores[-1], tokens)

    steps: dict[str, Callable[[], None]] = {
        "baselines": lambda: service_rows.baselines(bench, small),
        "service": lambda: service_rows.small_store(bench, small, tokens),
        "metrics": lambda: service_rows.observed(bench, small, tokens),
        "traced": lambda: traced_rows(bench, small, tokens, Target),
        "edge": lambda: edge_rows.measure(bench, small, tokens),
        "workers": workers,
        "postgres": postgres,
        "large": large,
    }
    for group in GROUPS:
        if group in groups:
            steps[group]()
    rows = [row_data(row) for row in bench.rows]
    return {
        "settings": {
            "seconds": s.seconds,
            "warmup": s.warmup,
            "concurrencies": list(s.concurrencies),
            "groups": [group for group in GROUPS if group in groups],
            "stores": {str(st.count): _store_info(st) for st in stores},
        },
        "environment": _environment(),
        "rows": rows,
        "targets": targets.evaluate(rows),
        "memory_kib": bench.memory,
        "serialization": serialization_cost(small.sample_id),
        "otlp_encoding": encoding_cost(),
        "reflection": reflect.route_build(s.work_dir / "reflect"),
        "metrics_cost_us": instrumentation_cost(),
        "profiles": {
            name: [{"function": f, "share": share} for f, share in top]
            for name, top in bench.profiles.items()
        },
        "notes": bench.notes,
    }


def _store_info(store: SeededStore) -> dict[str, object]:
    return {
        "path": str(store.path),
        "sample_id": store.sample_id,
        "sample_name": store.sample_name,
        "seconds_to_build": round(store.seconds_to_build, 1),
        "bytes": store.path.stat().st_size,
    }


def _environment() -> dict[str, object]:
    def version(args: list[str]) -> str:
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        text = (done.stdout or done.stderr).strip()
        return text.splitlines()[0] if text else "?"

    packages = ("grpcio", "protobuf", "uvicorn", "starlette", "fastapi", "httptools")
    gateway_package = "golang-github-grpc-ecosystem-grpc-gateway-dev"
    return {
        "python": platform.python_version(),
        "cpus": len(os.sched_getaffinity(0)),
        "machine": platform.machine(),
        "packages": {name: _package_version(name) for name in packages},
        "wrk": version(["wrk", "--version"]),
        "h2load": version(["h2load", "--version"]),
        "go": version(["go", "version"]),
        "grpc-gateway": version(["dpkg-query", "-W", "-f=${Version}", gateway_package]),
        "git": version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
    }


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def ensure_tools(install: bool) -> None:
    """wrk and h2load, installed from Debian's packages when missing and install is allowed.

    Raises:
        RuntimeError: a tool is missing and cannot be installed.
    """
    if shutil.which("wrk") and shutil.which("h2load"):
        return
    if not install:
        raise RuntimeError("wrk or h2load is missing: run scripts/ensure_bench_tools.sh")
    subprocess.run(
        ["bash", str(REPO / "scripts" / "ensure_bench_tools.sh")], check=True, timeout=900
    )


def _concurrencies(text: str) -> tuple[int, ...]:
    values = tuple(int(part) for part in text.split(",") if part.strip())
    if not values or min(values) < 1 or max(values) > 256:
        raise argparse.ArgumentTypeError("a comma-separated list of 1..256, e.g. 1,16,64")
    return values


def _groups(text: str) -> tuple[str, ...]:
    known = (*GROUPS, "watch")
    values = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [value for value in values if value not in known]
    if not values or unknown:
        raise argparse.ArgumentTypeError(f"a comma-separated list of {', '.join(known)}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per row")
    parser.add_argument(
        "--quick", action="store_true", help="2 s runs and 0.5 s warm-ups, to try it fast"
    )
    parser.add_argument(
        "--concurrency", type=_concurrencies, default=(1, 16, 64), help="e.g. 1,16,64"
    )
    parser.add_argument(
        "--only",
        type=_groups,
        default=(*GROUPS, "watch"),
        help="the groups of rows to run, e.g. workers or baselines,workers (see the module's "
        "docstring); default: all",
    )
    parser.add_argument("--small", type=int, default=SMALL, help="checkpoints in the small store")
    parser.add_argument("--large", type=int, default=LARGE, help="checkpoints in the large store")
    parser.add_argument(
        "--profile", action="store_true", help="also record py-spy profiles (needs py-spy)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where reports are written")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("CHECKPOINT_BENCH_POSTGRES_URL", ""),
        help="also measure gRPC GetCheckpoint on this PostgreSQL database (its checkpoints "
        "table is filled with the small store's rows) [CHECKPOINT_BENCH_POSTGRES_URL]",
    )
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="fail instead of installing wrk, h2load and the gateway's Debian packages",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    seconds, warmup = (2.0, 0.5) if args.quick else (args.duration, args.warmup)
    if not 0.5 <= seconds <= 600 or not 0 < warmup <= 60:
        print("bench: --duration must be 0.5..600 s and --warmup 0..60 s", file=sys.stderr)
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out: Path = args.out
    settings = Settings(
        seconds=seconds,
        warmup=warmup,
        concurrencies=args.concurrency,
        small=args.small,
        large=args.large,
        profile=args.profile,
        out_dir=out,
        cache_dir=out / "cache",
        work_dir=out / f"run-{stamp}",
        postgres=args.postgres,
    )
    groups: tuple[str, ...] = args.only
    try:
        ensure_tools(install=not args.no_install)
        gateway = (
            grpc_gateway.ensure_binary(install=not args.no_install) if "workers" in groups else None
        )
        data = run(settings, groups, gateway) if set(groups) - {"watch"} else None
    except (RuntimeError, loads.LoadError, subprocess.SubprocessError) as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    if data is not None:
        data["generated"] = stamp
        text = report.render(data)
        print(text)
        out.mkdir(parents=True, exist_ok=True)
        for name in (f"bench-{stamp}", "latest"):
            (out / f"{name}.md").write_text(text, encoding="utf-8")
            (out / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        print(f"bench: wrote {out / f'bench-{stamp}.md'} and .json", file=sys.stderr)
    if "watch" not in groups:
        return 0
    # The watch rows (bench/watch.py): 200 watchers at 50 writes/s, with their own baseline.
    watch_args = ["--seconds", "3" if args.quick else "10", "--out", str(out)]
    return watch.main([*watch_args, *(["--postgres", args.postgres] if args.postgres else [])])


if __name__ == "__main__":
    sys.exit(main())
