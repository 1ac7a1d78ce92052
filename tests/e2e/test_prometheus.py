"""A real Prometheus (Debian's package) scrapes both processes; PromQL returns what the test made.

The server and bridge are this module's own, so the counts Prometheus reports are exactly the
calls below. The scrape configuration has the README's job names (the alerts and the dashboard
select on them), the free ports as targets and a 1 s interval; the README's own block is checked
with `promtool check config`.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import EXAMPLE_ID, REPO, Tokens, bearer
from tests.e2e.metered import (
    MeteredBridge,
    MeteredServer,
    get_checkpoint,
    running_prometheus,
    scrape_config,
    start_metered_bridge,
    start_metered_server,
    tool,
)

SERVER_JOB, BRIDGE_JOB = "checkpoint-server", "checkpoint-rest-bridge"
BY_CODE = f'sum by (grpc_code) (grpc_server_handled_total{{job="{SERVER_JOB}"}})'
BY_ROUTE = (
    "sum by (http_route, http_response_status_code) "
    f'(http_server_request_duration_seconds_count{{job="{BRIDGE_JOB}", http_route!="/readyz"}})'
)


@dataclass(frozen=True)
class Scraped:
    server: MeteredServer
    bridge: MeteredBridge


@pytest.fixture
def scraped(e2e_dir: Path, e2e_tokens: Tokens, e2e_database: str) -> Iterator[Scraped]:
    """A metered server and bridge of this test alone."""
    server = start_metered_server(
        "prom-server", e2e_dir, e2e_database, e2e_tokens.path, extra=["--rate-limit", "0"]
    )
    try:
        bridge = start_metered_bridge("prom-bridge", e2e_dir, server.server.address)
    except RuntimeError:
        server.server.process.stop()
        raise
    yield Scraped(server, bridge)
    bridge.bridge.process.stop()
    server.server.process.stop()


def readme_scrape_config() -> str:
    """The YAML block of the README's "### Metrics" section."""
    section = (REPO / "README.md").read_text(encoding="utf-8").split("\n### Metrics\n", 1)[1]
    found = re.search(r"```yaml\n(.*?)```", section.split("\n## ", 1)[0], re.DOTALL)
    assert found is not None, "README's Metrics section has no yaml block"
    return found.group(1)


def host_port(url: str) -> str:
    return url.removeprefix("http://").removesuffix("/metrics")


def vector(result: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(r["metric"].get(k, "") for k in labels): float(r["value"][1]) for r in result}


def test_readme_scrape_config_is_valid(tmp_path: Path) -> None:
    """`promtool check config` accepts the README's scrape configuration as pasted."""
    config = tmp_path / "prometheus.yml"
    config.write_text(readme_scrape_config(), encoding="utf-8")
    checked = subprocess.run(
        [tool("promtool"), "check", "config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for job, port in ((SERVER_JOB, "9464"), (BRIDGE_JOB, "9465")):
        assert f"job_name: {job}" in config.read_text()
        assert f"127.0.0.1:{port}" in config.read_text()


def test_prometheus_query_returns_the_calls_made(
    scraped: Scraped, e2e_tokens: Tokens, tmp_path: Path
) -> None:
    """After 5 OK, 2 NotFound and 3 Unauthenticated gRPC calls, and REST calls through the
    bridge, PromQL over Prometheus's HTTP API sums exactly those counts per code and route."""
    address = scraped.server.server.address
    for checkpoint_id, token, times in (
        (EXAMPLE_ID, e2e_tokens.read, 5),
        ("no-such-checkpoint", e2e_tokens.read, 2),
        (EXAMPLE_ID, None, 3),
    ):
        for _ in range(times):
            get_checkpoint(address, checkpoint_id, token)
    with httpx.Client(base_url=scraped.bridge.bridge.base_url, timeout=5.0) as client:
        for _ in range(4):
            assert client.get(f"/v1/checkpoints/{EXAMPLE_ID}", headers=bearer(e2e_tokens.read))
        assert client.get("/not/an/api/path").status_code == 404
    # Through the bridge, the server also handled 4 more OK calls.
    expected_codes = {("OK",): 9.0, ("NotFound",): 2.0, ("Unauthenticated",): 3.0}
    expected_routes = {("/v1/checkpoints/{checkpoint_id}", "200"): 4.0, ("_OTHER", "404"): 1.0}
    targets = {
        SERVER_JOB: host_port(scraped.server.metrics_url),
        BRIDGE_JOB: host_port(scraped.bridge.metrics_url),
    }
    with running_prometheus(tmp_path / "prometheus", scrape_config(targets)) as prometheus:
        up = prometheus.wait_for(
            "up", lambda r: len(r) == 2 and all(x["value"][1] == "1" for x in r)
        )
        assert {x["metric"]["job"] for x in up} == set(targets)
        by_code = prometheus.wait_for(BY_CODE, lambda r: vector(r, "grpc_code") == expected_codes)
        by_route = prometheus.wait_for(
            BY_ROUTE,
            lambda r: vector(r, "http_route", "http_response_status_code") == expected_routes,
        )
    print(f"\nPromQL: {BY_CODE}\n-> {vector(by_code, 'grpc_code')}")
    print(f"PromQL: {BY_ROUTE}\n-> {vector(by_route, 'http_route', 'http_response_status_code')}")
