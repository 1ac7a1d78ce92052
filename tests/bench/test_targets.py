"""Issue 12's targets computed from a report's rows (bench/targets.py), and the report that
prints them: the ratio of the right rows at c=64, the comparison's direction, missing rows."""

from __future__ import annotations

from typing import Any

import pytest

from bench import report, targets
from bench.__main__ import build_parser
from bench.targets import Goal


def _row(key: str, rps: float, p99: float, cpu: float, concurrency: int = 64) -> dict[str, Any]:
    return {
        "key": key,
        "label": key,
        "kind": "rest",
        "runs": [
            {
                "concurrency": concurrency,
                "rps": rps,
                "p50_ms": p99 / 2,
                "p99_ms": p99,
                "cpu_us_per_request": {"server": cpu},
                "worker_cpu_shares": {"server": [0.5, 0.5]},
            }
        ],
    }


def _by_target(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {entry["target"]: entry for entry in results}


def test_each_target_is_the_ratio_of_its_two_rows_at_64() -> None:
    gateway = _row("gateway-w1", 1000, 20, 400)
    gateway["runs"] += _row("gateway-w1", 10, 1, 1, concurrency=16)["runs"]  # to be ignored
    rows = [_row("rest-bridge-w1", 950, 30, 600), gateway]
    results = _by_target(targets.evaluate(rows))

    throughput = results["bridge / gateway, 1 worker"]
    assert throughput["ratio"] == pytest.approx(0.95)
    assert throughput["status"] == "met"
    assert throughput["cpu_us"] == [600, 400]
    latency = results["bridge / gateway p99, 1 worker"]
    assert latency["ratio"] == pytest.approx(1.5)
    assert latency["status"] == "missed"  # "<=": a higher p99 than the gateway's misses
    assert results["bridge / gateway, 2 workers"]["status"] == "not measured"
    assert results["bridge / gateway, 2 workers"]["ratio"] is None


def test_a_bound_is_inclusive_and_a_zero_denominator_is_not_measured() -> None:
    goals = [
        Goal("at the bound", "rps", "a", "b", ">=", 1.7),
        Goal("below", "rps", "c", "b", ">=", 1.7),
        Goal("zero", "rps", "a", "z", ">=", 1.0),
    ]
    rows = [_row("a", 170, 1, 1), _row("b", 100, 1, 1), _row("c", 169, 1, 1), _row("z", 0, 1, 1)]
    statuses = {entry["target"]: entry["status"] for entry in targets.evaluate(rows, goals)}
    assert statuses == {"at the bound": "met", "below": "missed", "zero": "not measured"}


def test_the_report_prints_the_targets_and_the_workers_shares() -> None:
    rows = [_row("rest-inprocess-w2", 3100, 10, 300), _row("gateway-w2", 1000, 20, 900)]
    data: dict[str, Any] = {
        "generated": "20260101T000000Z",
        "settings": {"seconds": 2.0, "warmup": 0.5, "concurrencies": [64]},
        "environment": {"cpus": 2},
        "rows": rows,
        "targets": targets.evaluate(rows),
        "memory_kib": {},
        "serialization": {"us_per_call": 4.0},
        "reflection": {"methods": 50, "first_s": 0.05, "median_refetch_s": 0.01},
        "profiles": {},
        "notes": [],
    }
    text = report.render(data)
    assert "| in-process / gateway, 2 workers | rps | 3.10 | >= 3 | met | 300 / 900 |" in text
    assert "| gRPC / no-op grpcio servicer, 1 worker | rps | - | >= 0.9 | not measured |" in text
    assert "server 300 (50/50 %)" in text


def test_the_report_has_no_targets_section_without_the_worker_rows() -> None:
    assert targets.render(targets.evaluate([_row("grpc-id", 1000, 10, 500)])) == []


def test_only_takes_known_groups() -> None:
    assert build_parser().parse_args(["--only", "workers,baselines"]).only == (
        "workers",
        "baselines",
    )
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--only", "gateway"])
