"""deploy/: the Prometheus alerts pass their promtool unit tests, and the alerts and the Grafana
dashboard only query metric names the two processes really expose.

The exposed names come from the metric families the code registers (server and bridge on one
registry, as `serve --rest-listen --metrics-listen` has them), plus Prometheus's own `up`.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
import yaml

from checkpoint_prometheus import new_registry
from rest_bridge.metrics import BridgeMetrics
from server.metrics import ServerMetrics
from tests.e2e import REPO
from tests.e2e.metered import tool

DEPLOY = REPO / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
DASHBOARD = DEPLOY / "grafana" / "checkpoint-service.json"
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gauge": ("",),
    "info": ("_info",),
}
PROMQL_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})


def exposed_names() -> set[str]:
    """Every sample name the server's and the bridge's registries can expose."""
    registry = new_registry()
    ServerMetrics(registry)
    BridgeMetrics(registry)
    names = {"up"}
    for family in registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    found = re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr)
    return {name for name in found if name.lower() not in PROMQL_KEYWORDS}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def alert_exprs() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_metric_names_finds_selectors_only() -> None:
    """The PromQL name extractor returns the selected metrics, not functions or label names."""
    expr = (
        'histogram_quantile(0.99, sum by (le, grpc_method) (rate(a_bucket{x="y{z}"}[5m])))'
        " / on (job) b_total > 0.5 and c"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}


def test_alert_rules_are_valid_and_pass_their_unit_tests() -> None:
    """`promtool check rules` accepts alerts.yml and `promtool test rules` passes every case."""
    for args in (["check", "rules", str(ALERTS)], ["test", "rules", str(ALERT_TESTS)]):
        result = subprocess.run(
            [tool("promtool"), *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_cover_what_operators_page_on() -> None:
    """alerts.yml has the error-ratio, p99, rate-limit, store-error and target-down alerts."""
    names = {
        rule["alert"]
        for group in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    }
    assert {
        "CheckpointHighErrorRatio",
        "CheckpointHighLatencyP99",
        "CheckpointRateLimitRefusals",
        "CheckpointStoreErrors",
        "CheckpointTargetDown",
    } <= names


def test_dashboard_is_grafana_json_with_queried_panels() -> None:
    """The dashboard parses, has a Prometheus datasource variable and unique panel ids, and each
    non-row panel has at least one query on that datasource."""
    board = dashboard()
    assert board["uid"] == "checkpoint-service"
    assert board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


@pytest.mark.parametrize(("source", "exprs"), [("alerts", alert_exprs), ("dash", dashboard_exprs)])
def test_queries_use_only_metric_names_that_exist(source: str, exprs: Any) -> None:
    """Every metric name in the alerts' and dashboard's PromQL is one the processes expose."""
    exposed = exposed_names()
    used = set().union(*(metric_names(expr) for expr in exprs()))
    assert used, source
    assert used - exposed == set(), f"{source} queries metrics nobody exposes"
