"""Helpers of the metrics tests: processes with --metrics-listen, scraping, promtool, Prometheus.

Every process is a real one on a free 127.0.0.1 port; every wait is bounded. Prometheus and
promtool come from Debian's `prometheus` package, which scripts/ensure_test_services.sh installs
(`make test`); a missing one is a failure naming that script, never a skip.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e import (
    START_TIMEOUT,
    Bridge,
    GrpcServer,
    Process,
    free_port,
    start,
    start_bridge,
    start_server,
)

METRICS_URL = re.compile(r"serving metrics on (http://\S+/metrics)")
PROMETHEUS_TIMEOUT = 30.0
"""Seconds Prometheus may take to become ready, or to have scraped what a test made."""


def tool(name: str) -> str:
    """The path of a Prometheus tool (prometheus, promtool).

    Raises:
        AssertionError: it is not installed.
    """
    found = shutil.which(name)
    if found is None:
        raise AssertionError(f"{name} is not installed: run `bash scripts/ensure_test_services.sh`")
    return found


@dataclass(frozen=True)
class MeteredServer:
    server: GrpcServer
    metrics_url: str
    rest_url: str
    """http://HOST:PORT of the in-process REST door (--rest-listen)."""


@dataclass(frozen=True)
class MeteredBridge:
    bridge: Bridge
    metrics_url: str


def start_metered_server(
    name: str, log_dir: Path, database: str, tokens: Path, extra: Sequence[str] = ()
) -> MeteredServer:
    """checkpoint-server serve with --metrics-listen and --rest-listen on free ports."""
    args = ["--metrics-listen", "127.0.0.1:0", "--rest-listen", "127.0.0.1:0", *extra]
    server = start_server(name, log_dir, database, tokens, extra=args)
    try:
        url = _printed_url(server.process)
        rest = server.process.wait_for_output(re.compile(r"serving REST on (\S+:\d+)"))
    except RuntimeError:
        server.process.stop()
        raise
    return MeteredServer(server, url, "http://" + rest.rsplit(" ", 1)[1])


def start_metered_bridge(name: str, log_dir: Path, upstream: str) -> MeteredBridge:
    """checkpoint-rest-bridge in front of upstream, with --metrics-listen on a free port."""
    bridge = start_bridge(name, log_dir, upstream, extra=["--metrics-listen", "127.0.0.1:0"])
    try:
        url = _printed_url(bridge.process)
    except RuntimeError:
        bridge.process.stop()
        raise
    return MeteredBridge(bridge, url)


def _printed_url(process: Process) -> str:
    found = METRICS_URL.search(process.wait_for_output(METRICS_URL))
    assert found is not None
    return found.group(1)


def scrape(url: str) -> str:
    """The Prometheus text a /metrics URL serves."""
    response = httpx.get(url, timeout=5.0)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    return response.text


def sample_value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called name whose labels include labels (0 when none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def promtool_check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    """`promtool check metrics` on text (its lint of names, types, help and units)."""
    return subprocess.run(
        [tool("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def get_checkpoint(address: str, checkpoint_id: str, token: str | None) -> grpc.StatusCode:
    """One GetCheckpoint call over the network; the status it ended with."""
    metadata = () if token is None else (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(address) as channel:
        stub = svc_grpc.CheckpointServiceStub(channel)
        try:
            stub.GetCheckpoint(
                svc.GetCheckpointRequest(checkpoint_id=checkpoint_id), metadata=metadata, timeout=5
            )
        except grpc.RpcError as exc:
            code: grpc.StatusCode = exc.code()
            return code
    return grpc.StatusCode.OK


@dataclass(frozen=True)
class Prometheus:
    process: Process
    url: str

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result vector of an instant query over the HTTP API."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5.0)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(
        self, promql: str, done: Callable[[list[dict[str, Any]]], bool]
    ) -> list[dict[str, Any]]:
        """The query's result once done(result) holds, polled until PROMETHEUS_TIMEOUT.

        Raises:
            AssertionError: done never held; the message has the last result.
        """
        deadline = time.monotonic() + PROMETHEUS_TIMEOUT
        while True:
            result = self.query(promql)
            if done(result):
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{promql} stayed {json.dumps(result)}")
            time.sleep(0.25)


def scrape_config(targets: dict[str, str], interval: str = "1s") -> str:
    """A prometheus.yml scraping each job's HOST:PORT every interval (JSON is YAML)."""
    return json.dumps(
        {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [target]}]}
                for job, target in targets.items()
            ],
        },
        indent=2,
    )


@contextmanager
def running_prometheus(work_dir: Path, config: str) -> Iterator[Prometheus]:
    """Debian's prometheus on a free port with its TSDB in work_dir, stopped on exit."""
    work_dir.mkdir(parents=True, exist_ok=True)
    config_file = work_dir / "prometheus.yml"
    config_file.write_text(config, encoding="utf-8")
    port = free_port()
    args = [
        tool("prometheus"),
        f"--config.file={config_file}",
        f"--storage.tsdb.path={work_dir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    process = start("prometheus", args, work_dir)
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_for_http(f"{url}/-/ready", timeout=max(START_TIMEOUT, PROMETHEUS_TIMEOUT))
        yield Prometheus(process, url)
    finally:
        status = process.stop()
        assert status == 0, f"prometheus exited with {status}\n{process.output()}"
