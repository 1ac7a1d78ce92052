"""The service's rows of `make bench`: the two baselines, each door on the small store, the same
rows with metrics scraped, and gRPC on PostgreSQL and on the large store."""

from __future__ import annotations

import sys
from pathlib import Path

from bench import procs, scraper
from bench.rows import Bench, Target
from bench.seed import SeededStore, seed_postgres
from bench.serving import GRPC_PATH, check_grpc, get, grpc_frame, serve


def baselines(bench: Bench, small: SeededStore) -> None:
    """The no-op gRPC servicer and the constant-JSON app, each alone on the machine."""
    s, python = bench.settings, sys.executable
    noop = procs.start(
        "baseline-grpc",
        [python, "-m", "bench.baselines", "grpc", "--listen", "127.0.0.1:0"],
        s.work_dir,
    )
    try:
        address = noop.wait_for(r"serving gRPC on (\S+:\d+)").group(1)
        size = check_grpc(address, bench.token, small.sample_id)
        frame = grpc_frame(s.work_dir, "small-id", small.sample_id)
        bench.measure(
            "baseline-grpc",
            "baseline: no-op grpcio servicer",
            "grpc",
            Target(f"http://{address}{GRPC_PATH}", [noop], frame, size),
        )
    finally:
        noop.stop()
    port = procs.free_port()
    constant = procs.start(
        "baseline-json",
        [python, "-m", "bench.baselines", "json", "--listen", f"127.0.0.1:{port}"],
        s.work_dir,
    )
    try:
        url = f"http://127.0.0.1:{port}/v1/checkpoints/{small.sample_id}"
        constant.wait_http(url)
        bench.measure(
            "baseline-json", "baseline: constant JSON (Starlette)", "rest", Target(url, [constant])
        )
    finally:
        constant.stop()


def small_store(bench: Bench, small: SeededStore, tokens: Path) -> None:
    """The service on the small store: gRPC, REST through the bridge, REST in-process."""
    s, token = bench.settings, bench.token
    server, address, inprocess = serve("server-small", small.url, tokens, s.work_dir, rest=True)
    bridge_port, reflect_port = procs.free_port(), procs.free_port()
    bridges = [
        procs.start(
            name,
            [
                procs.script("checkpoint-rest-bridge"),
                *("--listen", f"127.0.0.1:{port}", "--upstream", address, *extra),
            ],
            s.work_dir,
        )
        for name, port, extra in (
            ("bridge", bridge_port, ()),
            ("bridge-reflect", reflect_port, ("--reflect",)),
        )
    ]
    bridge, reflecting = bridges
    try:
        for started, port in zip(bridges, (bridge_port, reflect_port), strict=True):
            started.wait_http(f"http://127.0.0.1:{port}/readyz")
        by_id = Target(
            f"http://{address}{GRPC_PATH}",
            [server],
            grpc_frame(s.work_dir, "small-id", small.sample_id),
            check_grpc(address, token, small.sample_id),
        )
        by_name = Target(
            by_id.url,
            [server],
            grpc_frame(s.work_dir, "small-name", small.sample_name),
            check_grpc(address, token, small.sample_name),
        )
        bridged = f"http://127.0.0.1:{bridge_port}/v1/checkpoints/"
        local = f"http://{inprocess}/v1/checkpoints/"
        for lookup in (small.sample_id, small.sample_name):
            if get(bridged + lookup, token) != get(local + lookup, token):
                bench.notes.append(f"bridge and in-process bodies differ for {lookup!r}")
        bench.measure("grpc-id", "gRPC GetCheckpoint by id", "grpc", by_id)
        bench.measure("grpc-name", "gRPC GetCheckpoint by name", "grpc", by_name)
        for key, label, base, serving in (
            ("rest-bridge", "REST {}, bridge -> server", bridged, [server, bridge]),
            ("rest-inprocess", "REST {}, in-process", local, [server]),
        ):
            for lookup, what in ((small.sample_id, "id"), (small.sample_name, "name")):
                target = Target(base + lookup, serving)
                bench.measure(f"{key}-{what}", label.format(f"by {what}"), "rest", target)
        reflected = Target(
            f"http://127.0.0.1:{reflect_port}/v1/checkpoints/{small.sample_id}",
            [server, reflecting],
        )
        bench.measure(
            "rest-reflect-id", "REST by id, bridge --reflect -> server", "rest", reflected
        )
        bench.memory[f"server, {small.count} checkpoints"] = server.memory_kib()
        bench.memory["bridge"] = bridge.memory_kib()
        if s.profile:
            bridged_id = Target(bridged + small.sample_id, [server, bridge])
            bench.profile("rest-bridge", bridged_id, [bridge, server])
            bench.profile("grpc", by_id, [server])
            bench.profile("rest-inprocess", Target(local + small.sample_id, [server]), [server])
    finally:
        for started in bridges:
            started.stop()
        server.stop()


OBSERVED_ROWS = {
    "-bare": (("--log-level", "warning"), "no access lines, no metrics"),
    "-metrics": (("--metrics-listen", "127.0.0.1:0"), "access lines and metrics"),
}
"""The rows by id again with observability off (no access line: --log-level warning) and on
(access lines at info and --metrics-listen, scraped every second), for what it costs."""


def observed(bench: Bench, small: SeededStore, tokens: Path) -> None:
    """gRPC, bridge and in-process GetCheckpoint by id once per set-up of OBSERVED_ROWS, each
    set-up its own server and bridge (all started before any load), every row measured in
    alternating rounds with its twin of the other set-up (Bench.measure_interleaved): what is
    compared is a few per cent, less than two runs minutes apart differ on a shared machine.
    With metrics, /metrics is scraped every second, as Prometheus would."""
    s, token = bench.settings, bench.token
    started: list[procs.Proc] = []
    twins: tuple[list[tuple[str, str, str, Target]], ...] = ([], [], [])
    scraped: list[str] = []
    try:
        for suffix, (flags, what) in OBSERVED_ROWS.items():
            server, address, inprocess = serve(
                f"server{suffix}", small.url, tokens, s.work_dir, rest=True, extra=flags
            )
            started.append(server)
            port = procs.free_port()
            bridge = procs.start(
                f"bridge{suffix}",
                [
                    procs.script("checkpoint-rest-bridge"),
                    *("--listen", f"127.0.0.1:{port}", "--upstream", address, *flags),
                ],
                s.work_dir,
            )
            started.append(bridge)
            bridge.wait_http(f"http://127.0.0.1:{port}/readyz")
            if "--metrics-listen" in flags:
                scraped += [
                    p.wait_for(r"serving metrics on (\S+)").group(1) for p in (server, bridge)
                ]
            frame = grpc_frame(s.work_dir, "small-id", small.sample_id)
            size = check_grpc(address, token, small.sample_id)
            by_id = Target(f"http://{address}{GRPC_PATH}", [server], frame, size)
            twins[0].append(
                (f"grpc-id{suffix}", f"gRPC GetCheckpoint by id, {what}", "grpc", by_id)
            )
            for rows, key, door, url, serving in (
                (
                    twins[1],
                    "rest-bridge-id",
                    "bridge -> server",
                    f"127.0.0.1:{port}",
                    [server, bridge],
                ),
                (twins[2], "rest-inprocess-id", "in-process", inprocess, [server]),
            ):
                by_id_url = f"http://{url}/v1/checkpoints/{small.sample_id}"
                get(by_id_url, token)
                rows.append(
                    (
                        key + suffix,
                        f"REST by id, {door}, {what}",
                        "rest",
                        Target(by_id_url, serving),
                    )
                )
        with scraper.scraping(scraped, interval=1.0):
            for rows in twins:
                bench.measure_interleaved(rows)
    finally:
        for process in reversed(started):
            process.stop()


def postgres_store(bench: Bench, url: str, count: int, tokens: Path) -> None:
    """gRPC GetCheckpoint by id with the same checkpoints in PostgreSQL, to compare stores."""
    s = bench.settings
    sample_id = seed_postgres(url, count)
    server, address, _ = serve("server-postgres", url, tokens, s.work_dir, rest=False)
    try:
        target = Target(
            f"http://{address}{GRPC_PATH}",
            [server],
            grpc_frame(s.work_dir, "postgres-id", sample_id),
            check_grpc(address, bench.token, sample_id),
        )
        label = f"gRPC GetCheckpoint by id, PostgreSQL, {power(count)} store"
        bench.measure("grpc-id-postgres", label, "grpc", target)
    finally:
        server.stop()


def large_store(bench: Bench, large: SeededStore, tokens: Path) -> None:
    """The same server on the large store (with its idle REST door, so memory compares)."""
    s = bench.settings
    server, address, _ = serve("server-large", large.url, tokens, s.work_dir, rest=True)
    try:
        target = Target(
            f"http://{address}{GRPC_PATH}",
            [server],
            grpc_frame(s.work_dir, "large-id", large.sample_id),
            check_grpc(address, bench.token, large.sample_id),
        )
        label = f"gRPC GetCheckpoint by id, {power(large.count)} store"
        bench.measure("grpc-id-large", label, "grpc", target)
        bench.memory[f"server, {large.count} checkpoints"] = server.memory_kib()
    finally:
        server.stop()


def power(count: int) -> str:
    exponent = len(str(count)) - 1
    return f"10^{exponent}" if count == 10**exponent else str(count)
