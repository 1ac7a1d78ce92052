"""--metrics-listen on both commands: what the real processes count, scraped over HTTP.

One server (with its in-process REST door) and one bridge in front of it, both with metrics, on
the session's seeded database; a second, rate-limited server for refusals. Counts are compared as
differences of two scrapes, so the tests do not depend on one another's traffic.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc

from tests.e2e import EXAMPLE_ID, Tokens, bearer, executable, free_port
from tests.e2e.metered import (
    MeteredBridge,
    MeteredServer,
    get_checkpoint,
    promtool_check_metrics,
    sample_value,
    scrape,
    start_metered_bridge,
    start_metered_server,
)
from tests.e2e.watching import Stream

SERVICE = "checkpoint.v1.CheckpointService"
ROUTE = "/v1/checkpoints/{checkpoint_id}"


@dataclass(frozen=True)
class Metered:
    server: MeteredServer
    bridge: MeteredBridge
    tokens: Tokens


@pytest.fixture(scope="module")
def metered(e2e_dir: Path, e2e_tokens: Tokens, e2e_database: str) -> Iterator[Metered]:
    """A metered server (rate limit off) and a metered bridge in front of it."""
    server = start_metered_server(
        "metrics-server", e2e_dir, e2e_database, e2e_tokens.path, extra=["--rate-limit", "0"]
    )
    try:
        bridge = start_metered_bridge("metrics-bridge", e2e_dir, server.server.address)
    except RuntimeError:
        server.server.process.stop()
        raise
    yield Metered(server, bridge, e2e_tokens)
    bridge.bridge.process.stop()
    server.server.process.stop()


def handled(text: str, code: str, method: str = "GetCheckpoint") -> float:
    labels = {"grpc_service": SERVICE, "grpc_method": method, "grpc_code": code}
    return sample_value(text, "grpc_server_handled_total", grpc_type="unary", **labels)


def test_server_counts_each_call_with_its_code(metered: Metered) -> None:
    """Every GetCheckpoint over gRPC is started and handled once, under go-grpc-prometheus's code
    names, including calls the guard refuses; health checks are not counted."""
    url, address = metered.server.metrics_url, metered.server.server.address
    before = scrape(url)
    calls: dict[str, list[tuple[str, str | None]]] = {
        "OK": [(EXAMPLE_ID, metered.tokens.read)] * 3,
        "NotFound": [("no-such-checkpoint", metered.tokens.read)] * 2,
        "Unauthenticated": [(EXAMPLE_ID, None)],
        "PermissionDenied": [(EXAMPLE_ID, metered.tokens.write)],
    }
    for code, made in calls.items():
        for checkpoint_id, token in made:
            status = get_checkpoint(address, checkpoint_id, token)
            assert status.name.replace("_", "").lower() == code.lower(), status
    assert httpx.get(metered.bridge.bridge.base_url + "/readyz", timeout=5).status_code == 200
    after = scrape(url)
    for code, made in calls.items():
        assert handled(after, code) - handled(before, code) == len(made), code
    started = "grpc_server_started_total"
    total = sum(len(made) for made in calls.values())
    labels = {"grpc_method": "GetCheckpoint"}
    assert sample_value(after, started, **labels) - sample_value(before, started, **labels) == total
    count = "grpc_server_handling_seconds_count"
    assert sample_value(after, count, **labels) - sample_value(before, count, **labels) == total
    assert sample_value(after, started, grpc_service="grpc.health.v1.Health") == 0
    assert sample_value(after, "checkpoint_store_operation_seconds_count", operation="get") > 0


def test_watch_streams_are_counted_from_start_to_end(metered: Metered) -> None:
    """WatchCheckpoints is counted as a server_stream: started when it opens, handled with its
    code when it ends, a refused one at once (Unauthenticated), one the client cancels after its
    first event as Canceled, and timed over its whole life."""
    url, address = metered.server.metrics_url, metered.server.server.address
    watch = {"grpc_type": "server_stream", "grpc_method": "WatchCheckpoints"}

    def count(text: str, name: str, **labels: str) -> float:
        return sample_value(text, name, **watch, **labels)

    before = scrape(url)
    with grpc.insecure_channel(address) as channel:
        stub = svc_grpc.CheckpointServiceStub(channel)
        refused = Stream(stub.WatchCheckpoints(svc.WatchCheckpointsRequest(), timeout=10))
        assert refused.error().code() == grpc.StatusCode.UNAUTHENTICATED
        metadata = (("authorization", f"Bearer {metered.tokens.read}"),)
        stream = Stream(
            stub.WatchCheckpoints(svc.WatchCheckpointsRequest(), metadata=metadata, timeout=30)
        )
        stream.next()
        opened = scrape(url)
        stream.call.cancel()
        deadline = time.monotonic() + 10
        after = scrape(url)
        while count(after, "grpc_server_handled_total", grpc_code="Canceled") == count(
            before, "grpc_server_handled_total", grpc_code="Canceled"
        ):
            assert time.monotonic() < deadline, "the cancelled stream was never counted"
            time.sleep(0.1)
            after = scrape(url)
    _refused_then_cancelled(count, "grpc_server", before, opened, after)


def _refused_then_cancelled(
    count: Callable[..., float], side: str, before: str, opened: str, after: str
) -> None:
    """Between the scrapes: two streams started, one refused at once (Unauthenticated); the
    other not handled while open (opened), then handled as Canceled (after); both timed."""

    def delta(later: str, name: str, **labels: str) -> float:
        return count(later, f"{side}_{name}", **labels) - count(before, f"{side}_{name}", **labels)

    assert delta(opened, "started_total") == 2
    assert delta(opened, "handled_total", grpc_code="Unauthenticated") == 1
    assert delta(opened, "handled_total", grpc_code="Canceled") == 0, "an open stream is handled"
    assert delta(after, "handled_total", grpc_code="Canceled") == 1
    assert delta(after, "handling_seconds_count") == 2


def test_bridge_labels_requests_by_route_template_and_status(metered: Metered) -> None:
    """The bridge's histogram is labelled by the route template (never the raw path), unknown
    paths share one fixed route, and each upstream call is a grpc_client_handled_total."""
    base, url = metered.bridge.bridge.base_url, metered.bridge.metrics_url
    name = "http_server_request_duration_seconds_count"
    before = scrape(url)
    with httpx.Client(base_url=base, timeout=5.0) as client:
        for _ in range(2):
            assert client.get(f"/v1/checkpoints/{EXAMPLE_ID}", headers=bearer(metered.tokens.read))
        assert client.get("/v1/checkpoints/missing", headers=bearer(metered.tokens.read))
        for path in ("/no/such/path/1", "/no/such/path/2"):
            assert client.get(path).status_code == 404
    after = scrape(url)

    def delta(route: str, status: str) -> float:
        labels = {"http_request_method": "GET", "http_route": route}
        labels["http_response_status_code"] = status
        return sample_value(after, name, **labels) - sample_value(before, name, **labels)

    assert delta(ROUTE, "200") == 2
    assert delta(ROUTE, "404") == 1
    assert delta("_OTHER", "404") == 2
    assert "/no/such/path" not in after
    assert EXAMPLE_ID not in after
    client_ok = sample_value(after, "grpc_client_handled_total", grpc_code="OK")
    assert client_ok - sample_value(before, "grpc_client_handled_total", grpc_code="OK") == 2
    assert sample_value(after, "http_server_active_requests", http_request_method="GET") == 0


@pytest.mark.parametrize("door", ["bridge", "in-process"])
def test_each_door_counts_an_upstream_watch_as_one_client_stream(
    metered: Metered, door: str
) -> None:
    """A watch through either REST door (SSE) is one grpc_client server_stream: started when
    it opens, not handled while it is open, handled as Canceled once the client goes away; a
    refused one (no token) is handled with its code at once."""
    base, url = {
        "bridge": (metered.bridge.bridge.base_url, metered.bridge.metrics_url),
        "in-process": (metered.server.rest_url, metered.server.metrics_url),
    }[door]
    watch = {"grpc_type": "server_stream", "grpc_method": "WatchCheckpoints"}

    def count(text: str, name: str, **labels: str) -> float:
        return sample_value(text, name, **watch, **labels)

    handled_total = "grpc_client_handled_total"
    before = scrape(url)
    with httpx.Client(base_url=base, timeout=10.0) as client:
        sse = {"Accept": "text/event-stream"}
        assert client.get("/v1/checkpoints:watch", headers=sse).status_code == 401
        auth = {**sse, **bearer(metered.tokens.read)}
        with client.stream("GET", "/v1/checkpoints:watch", headers=auth) as response:
            assert response.status_code == 200
            lines = response.iter_lines()  # kept: closing it closes the stream
            while not next(lines).startswith("event: synced"):
                pass
            opened = scrape(url)
    deadline = time.monotonic() + 10
    while count(after := scrape(url), handled_total, grpc_code="Canceled") == count(
        before, handled_total, grpc_code="Canceled"
    ):
        assert time.monotonic() < deadline, "the closed watch was never counted"
        time.sleep(0.1)
    _refused_then_cancelled(count, "grpc_client", before, opened, after)


def test_inprocess_rest_is_measured_on_the_servers_endpoint(metered: Metered) -> None:
    """A REST call through --rest-listen shows on the server's /metrics as an HTTP request, an
    upstream client call and a server call."""
    url = metered.server.metrics_url
    before = scrape(url)
    response = httpx.get(
        f"{metered.server.rest_url}/v1/checkpoints/{EXAMPLE_ID}",
        headers=bearer(metered.tokens.read),
        timeout=5.0,
    )
    assert response.status_code == 200
    after = scrape(url)
    http = "http_server_request_duration_seconds_count"
    labels = {"http_route": ROUTE, "http_response_status_code": "200"}
    assert sample_value(after, http, **labels) - sample_value(before, http, **labels) == 1
    client = "grpc_client_handled_total"
    assert sample_value(after, client, grpc_code="OK") - sample_value(
        before, client, grpc_code="OK"
    )
    assert handled(after, "OK") - handled(before, "OK") == 1


def test_rate_limit_refusals_are_counted(
    e2e_dir: Path, e2e_tokens: Tokens, e2e_database: str
) -> None:
    """A call the rate limit refuses counts in checkpoint_rate_limited_total (by token name) and
    as a ResourceExhausted call."""
    limited = start_metered_server(
        "metrics-limited",
        e2e_dir,
        e2e_database,
        e2e_tokens.path,
        extra=["--rate-limit", "0.01", "--rate-burst", "2"],
    )
    try:
        codes = [
            get_checkpoint(limited.server.address, EXAMPLE_ID, e2e_tokens.read) for _ in range(3)
        ]
        assert codes == [grpc.StatusCode.OK] * 2 + [grpc.StatusCode.RESOURCE_EXHAUSTED]
        text = scrape(limited.metrics_url)
    finally:
        limited.server.process.stop()
    assert sample_value(text, "checkpoint_rate_limited_total", token_name="e2e-read") == 1
    assert handled(text, "ResourceExhausted") == 1
    assert handled(text, "OK") == 2


def test_promtool_check_metrics_is_clean_on_both_endpoints(metered: Metered) -> None:
    """`promtool check metrics` finds nothing to say about either endpoint's text."""
    httpx.get(f"{metered.bridge.bridge.base_url}/v1/checkpoints/{EXAMPLE_ID}", timeout=5.0)
    for url in (metered.server.metrics_url, metered.bridge.metrics_url):
        text = scrape(url)
        assert "grpc_client_handled_total" in text
        assert "process_cpu_seconds_total" in text
        checked = promtool_check_metrics(text)
        assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", ""), url


def test_metrics_are_never_served_on_the_api_port(metered: Metered) -> None:
    """GET /metrics on the bridge's API port is the contract's 404 envelope, not the metrics."""
    response = httpx.get(f"{metered.bridge.bridge.base_url}/metrics", timeout=5.0)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("command", "listen", "message"),
    [
        (["checkpoint-rest-bridge"], "no-port", "--metrics-listen must be HOST:PORT"),
        (["checkpoint-server", "serve"], "192.0.2.1:9", "cannot listen on 192.0.2.1:9"),
    ],
)
def test_a_bad_metrics_address_is_a_usage_error(
    e2e_tokens: Tokens, e2e_database: str, command: list[str], listen: str, message: str
) -> None:
    """A --metrics-listen that is not HOST:PORT, or cannot be bound, stops the command with
    exit status 2 and a message naming the address."""
    args = [executable(command[0]), *command[1:], "--listen", f"127.0.0.1:{free_port()}"]
    if command[0] == "checkpoint-server":
        args += ["--database", e2e_database, "--tokens", str(e2e_tokens.path)]
    result = subprocess.run(
        [*args, "--metrics-listen", listen],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
