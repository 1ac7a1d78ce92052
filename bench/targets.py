"""Issue 12's targets as data: each a ratio of two rows of the same run, at concurrency 64,
with its bound; evaluate() says met, missed or not measured, render() prints the section.

The fifth target (one token's budget across 2 workers within 10 % of the rate) is a test, not a
timing: tests/e2e/test_workers.py::test_one_budget_per_token_across_workers.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

CONCURRENCY = 64
COMPARISONS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le}


@dataclass(frozen=True)
class Goal:
    """numerator's figure / denominator's figure, compared with bound."""

    text: str
    figure: str
    """A key of a run in the report: rps or p99_ms."""
    numerator: str
    denominator: str
    comparison: str
    bound: float


TARGETS: tuple[Goal, ...] = tuple(
    Goal(*row)
    for row in (
        # target, figure, numerator row, denominator row, comparison, bound
        ("gRPC / no-op grpcio servicer, 1 worker", "rps", "grpc-w1", "noop-w1", ">=", 0.9),
        ("gRPC / no-op grpcio servicer, 2 workers", "rps", "grpc-w2", "noop-w2", ">=", 0.9),
        ("in-process / gateway, 2 workers", "rps", "rest-inprocess-w2", "gateway-w2", ">=", 3.0),
        ("bridge / gateway, 1 worker", "rps", "rest-bridge-w1", "gateway-w1", ">=", 0.9),
        ("bridge / gateway, 2 workers", "rps", "rest-bridge-w2", "gateway-w2", ">=", 0.9),
        ("bridge / gateway p99, 1 worker", "p99_ms", "rest-bridge-w1", "gateway-w1", "<=", 1.0),
        ("bridge / gateway p99, 2 workers", "p99_ms", "rest-bridge-w2", "gateway-w2", "<=", 1.0),
        ("gRPC, 2 workers / 1 worker", "rps", "grpc-w2", "grpc-w1", ">=", 1.7),
        ("in-process, 2 workers / 1", "rps", "rest-inprocess-w2", "rest-inprocess-w1", ">=", 1.7),
    )
)


def evaluate(
    rows: Sequence[dict[str, Any]],
    goals: Sequence[Goal] = TARGETS,
    concurrency: int = CONCURRENCY,
) -> list[dict[str, Any]]:
    """Each goal against the report's rows: its ratio, the CPU per request of both rows (summed
    over their processes) and met / missed, or "not measured" when a row is missing."""
    runs = {
        row["key"]: run for row in rows for run in row["runs"] if run["concurrency"] == concurrency
    }
    results = []
    for goal in goals:
        top, bottom = runs.get(goal.numerator), runs.get(goal.denominator)
        entry: dict[str, Any] = {
            "target": goal.text,
            "figure": goal.figure,
            "numerator": goal.numerator,
            "denominator": goal.denominator,
            "bound": f"{goal.comparison} {goal.bound:g}",
            "ratio": None,
            "cpu_us": None,
            "status": "not measured",
        }
        if top is not None and bottom is not None and bottom[goal.figure]:
            ratio = top[goal.figure] / bottom[goal.figure]
            met = COMPARISONS[goal.comparison](ratio, goal.bound)
            entry["ratio"] = round(ratio, 3)
            entry["cpu_us"] = [
                round(sum(run["cpu_us_per_request"].values())) for run in (top, bottom)
            ]
            entry["status"] = "met" if met else "missed"
        results.append(entry)
    return results


def render(results: Sequence[dict[str, Any]], concurrency: int = CONCURRENCY) -> list[str]:
    """The targets section of the report, as markdown lines (empty when nothing was measured)."""
    if all(entry["ratio"] is None for entry in results):
        return []
    lines = [
        "",
        f"Issue 12's targets, from the rows of this run at c={concurrency} (CPU µs per request "
        "of each row, summed over its processes):",
        "",
        "| target | figure | ratio | bound | status | CPU µs/req |",
        "|---|---|---:|---|---|---|",
    ]
    for entry in results:
        ratio = "-" if entry["ratio"] is None else f"{entry['ratio']:.2f}"
        cpu = "" if entry["cpu_us"] is None else " / ".join(str(us) for us in entry["cpu_us"])
        lines.append(
            f"| {entry['target']} | {entry['figure']} | {ratio} | {entry['bound']} | "
            f"{entry['status']} | {cpu} |"
        )
    lines.append(
        "- one token's budget across 2 workers within 10 % of the rate: a test, not a timing "
        "(tests/e2e/test_workers.py::test_one_budget_per_token_across_workers)"
    )
    return lines
