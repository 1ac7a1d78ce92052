"""`checkpoint-rest-bridge --reflect` in front of the echo service run as its own server, with
no descriptor file: routes from server reflection, followed as the upstream changes.

The echo server has grpcio-reflection's v1alpha only, so every test here also goes through the
bridge's fallback from v1. Proto variants are made from echo.proto at test time.
"""

from __future__ import annotations

import itertools
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc_tools
import httpx
import pytest

from tests.e2e import Bridge, Process, free_port, start, start_bridge
from tests.transcoding.conftest import HERE, ROOT, SERVICE
from tests.transcoding.relay import Relay

ECHO_PROTO = HERE / "protos" / "testing" / "v1" / "echo.proto"
SWAP_SECONDS = 5.0
PING = """
  // Added by the second version.
  rpc Ping(NameRequest) returns (NameRequest) {
    option (google.api.http) = {get: "/v1/ping/{name}"};
  }

  // No rule: not reachable over REST.
  rpc Hidden("""
CLASH = """
  // Collides with GetByName.
  rpc Clash(NameRequest) returns (NameRequest) {
    option (google.api.http) = {get: "/v1/{name=libraries/*/items/*}"};
  }

  // No rule: not reachable over REST.
  rpc Hidden("""
HIDDEN = "\n  // No rule: not reachable over REST.\n  rpc Hidden("


def variant(out: Path, name: str, *replacements: tuple[str, str]) -> Path:
    """echo.proto with text replaced, compiled into out/NAME.binpb (with imports)."""
    text = ECHO_PROTO.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    source = out / name / "testing" / "v1" / "echo.proto"
    source.parent.mkdir(parents=True)
    source.write_text(text, encoding="utf-8")
    target = out / f"{name}.binpb"
    include = Path(grpc_tools.__file__).parent / "_proto"
    subprocess.run(
        [
            *(sys.executable, "-m", "grpc_tools.protoc"),
            *(f"-I{out / name}", f"-I{ROOT / 'protos'}", f"-I{include}"),
            *(f"--descriptor_set_out={target}", "--include_imports", "testing/v1/echo.proto"),
        ],
        check=True,
        timeout=60,
    )
    return target


@pytest.fixture(scope="module")
def protos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The first echo schema, a second that moves /v1/search to /v2/search and adds Ping, and
    one whose rules collide."""
    out = tmp_path_factory.mktemp("reflect-protos")
    return {
        "v1": variant(out, "v1"),
        "v2": variant(out, "v2", ('get: "/v1/search"', 'get: "/v2/search"'), (HIDDEN, PING)),
        "clash": variant(out, "clash", (HIDDEN, CLASH)),
    }


def start_echo(
    logs: Path, name: str, descriptors: Path, port: int = 0, *extra: str
) -> tuple[Process, int]:
    """The echo server with reflection and health on port (0: a free one), once it listens."""
    args = [sys.executable, str(HERE / "echo_server.py"), str(descriptors), SERVICE]
    process = start(name, [*args, "--port", str(port), "--reflection", *extra], logs)
    line = process.wait_for_output(re.compile(r"port \d+"))
    return process, int(line.split()[1])


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def stops() -> Iterator[list[Process]]:
    """Processes to stop at the end of the test, whatever happened."""
    started: list[Process] = []
    yield started
    for process in reversed(started):
        process.stop()


def reflect_bridge(logs: Path, port: int, stops: list[Process], ready: str = "/readyz") -> Bridge:
    bridge = start_bridge("bridge", logs, f"127.0.0.1:{port}", ["--reflect"], ready)
    stops.append(bridge.process)
    return bridge


def wait_for(client: httpx.Client, path: str, status: int, seconds: float = SWAP_SECONDS) -> float:
    """Seconds until GET path answers status, failing after seconds."""
    started = time.monotonic()
    while True:
        answer = client.get(path)
        if answer.status_code == status:
            return time.monotonic() - started
        assert time.monotonic() - started < seconds, (path, answer.status_code, answer.text)
        time.sleep(0.05)


def test_reflect_serves_every_service_with_a_rule(
    protos: dict[str, Path], logs: Path, stops: list[Process]
) -> None:
    """Without --service the bridge exposes the echo service (it has rules) and not the
    reflection or health services, from reflection alone."""
    echo, port = start_echo(logs, "echo", protos["v1"])
    stops.append(echo)
    bridge = reflect_bridge(logs, port, stops)
    with httpx.Client(base_url=bridge.base_url, timeout=5) as client:
        answer = client.get("/v1/search", params={"query": "q", "limit": "3"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"]["query"] == "q"
        assert answer.json()["data"]["limit"] == 3
        spec = client.get("/openapi.json").json()
    assert "/v1/search" in spec["paths"]
    assert "/v1/books/{book.id}" in spec["paths"]
    probes = {"/healthz", "/readyz", "/openapi.json"}
    assert all(path.startswith("/v1/") for path in set(spec["paths"]) - probes), spec["paths"]
    operations = {op["operationId"] for item in spec["paths"].values() for op in item.values()}
    assert "EchoService_Search" in operations
    assert not any(op.startswith(("ServerReflection_", "Health_")) for op in operations)


def test_changed_upstream_is_followed_without_a_restart_or_a_failed_request(
    protos: dict[str, Path], logs: Path, stops: list[Process]
) -> None:
    """The echo server replaced (a rolling restart behind a relay) by one with a moved route and
    a new method: within 5 s the new routes answer and the old one is 404, without restarting
    the bridge, and no request of a loop running meanwhile gets a 5xx."""
    aging = ("--max-connection-age-ms", "300")
    old, old_port = start_echo(logs, "echo-v1", protos["v1"], 0, *aging)
    stops.append(old)
    relay = Relay(old_port)
    try:
        bridge = reflect_bridge(logs, relay.port, stops)
        answers, failures = _swap_under_load(
            bridge, relay, old, protos["v2"], logs=logs, stops=stops
        )
    finally:
        relay.close()
    assert answers, "the request loop made no request"
    assert failures == []
    assert {status for _, status in answers} <= {200, 404}, sorted(set(answers))
    # Each path switched once at most: 200 -> 404 for the old route, 404 -> 200 for the new.
    for path in LOOP_PATHS:
        statuses = [status for p, status in answers if p == path]
        changes = sum(a != b for a, b in itertools.pairwise(statuses))
        assert changes <= 1, (path, statuses)
    assert "changed, swapped in" in bridge.process.stderr.read_text(encoding="utf-8")


LOOP_PATHS = ("/v1/search?query=a", "/v2/search?query=a", "/v1/ping/x")


def _swap_under_load(
    bridge: Bridge, relay: Relay, old: Process, v2: Path, *, logs: Path, stops: list[Process]
) -> tuple[list[tuple[str, int]], list[str]]:
    """Replace old by an echo server of v2 while a thread requests LOOP_PATHS; the answers."""
    old_port = relay.target
    answers: list[tuple[str, int]] = []
    failures: list[str] = []
    done = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=bridge.base_url, timeout=5) as client:
            deadline = time.monotonic() + 15
            while not done.is_set() and time.monotonic() < deadline and len(answers) < 5000:
                for path in LOOP_PATHS:
                    answer = client.get(path)
                    answers.append((path, answer.status_code))
                    if answer.status_code >= 500:
                        failures.append(answer.text)

    loop = threading.Thread(target=load)
    with httpx.Client(base_url=bridge.base_url, timeout=5) as client:
        assert client.get("/v1/search").status_code == 200
        assert client.get("/v1/ping/x").status_code == 404
        loop.start()
        try:
            time.sleep(0.3)
            new, new_port = start_echo(logs, "echo-v2", v2, 0, "--max-connection-age-ms", "300")
            stops.append(new)
            relay.target = new_port
            wait_for(client, "/v1/ping/x", 200)
            wait_for(client, "/v1/search", 404)
            assert client.get("/v2/search", params={"query": "b"}).json()["data"]["query"] == "b"
            started = time.monotonic()
            while relay.connections_to(old_port):
                assert time.monotonic() - started < SWAP_SECONDS, "old upstream still connected"
                time.sleep(0.05)
            old.stop()
            time.sleep(0.3)
        finally:
            done.set()
            loop.join(timeout=20)
        assert "/v1/ping/{name}" in client.get("/openapi.json").json()["paths"]
    return answers, failures


def test_colliding_schema_is_refused_and_the_old_routes_keep_serving(
    protos: dict[str, Path], logs: Path, stops: list[Process]
) -> None:
    """An upstream whose new rules collide: the bridge keeps the old table, /readyz shows why,
    and the log says so."""
    old, port = start_echo(logs, "echo-v1", protos["v1"])
    stops.append(old)
    bridge = reflect_bridge(logs, port, stops)
    new, _ = start_echo(logs, "echo-clash", protos["clash"], port)
    stops.append(new)
    old.stop()
    with httpx.Client(base_url=bridge.base_url, timeout=5) as client:
        started = time.monotonic()
        while "schema_error" not in (ready := client.get("/readyz")).json().get("data", {}):
            assert time.monotonic() - started < SWAP_SECONDS, ready.text
            time.sleep(0.05)
        assert ready.status_code == 200
        error = ready.json()["data"]["schema_error"]
        for word in ("collide", "Clash", "GetByName"):
            assert word in error, error
        assert client.get("/v1/search", params={"query": "c"}).status_code == 200
        assert client.get("/v1/libraries/l/items/i").json()["data"]["name"] == (
            "libraries/l/items/i"
        )
    assert "schema refused" in bridge.process.stderr.read_text(encoding="utf-8")


def test_bridge_started_before_its_upstream_is_unavailable_then_serves(
    protos: dict[str, Path], logs: Path, stops: list[Process]
) -> None:
    """With no upstream yet: /healthz 200, /readyz and every route 503 envelopes; once the
    upstream starts, the bridge serves it without a restart."""
    port = free_port()
    bridge = reflect_bridge(logs, port, stops, ready="/healthz")
    with httpx.Client(base_url=bridge.base_url, timeout=5) as client:
        assert client.get("/healthz").status_code == 200
        for path in ("/readyz", "/v1/search", "/openapi.json", "/no/such/path"):
            answer = client.get(path)
            assert answer.status_code == 503, (path, answer.text)
            assert answer.json()["error"]["code"] == "unavailable", answer.text
            assert answer.headers["retry-after"] == "1"
        echo, _ = start_echo(logs, "echo", protos["v1"], port)
        stops.append(echo)
        wait_for(client, "/v1/search", 200)
        wait_for(client, "/readyz", 200)


def test_sighup_rereads_the_descriptor_set_file(
    protos: dict[str, Path], logs: Path, stops: list[Process]
) -> None:
    """Without --reflect, SIGHUP reads --descriptor-set again and swaps the new routes in."""
    echo, port = start_echo(logs, "echo-v2", protos["v2"])
    stops.append(echo)
    descriptors = logs / "served.binpb"
    descriptors.write_bytes(protos["v1"].read_bytes())
    extra = ["--descriptor-set", str(descriptors), "--service", SERVICE]
    bridge = start_bridge("bridge", logs, f"127.0.0.1:{port}", extra)
    stops.append(bridge.process)
    with httpx.Client(base_url=bridge.base_url, timeout=5) as client:
        assert client.get("/v1/ping/x").status_code == 404
        descriptors.write_bytes(protos["v2"].read_bytes())
        bridge.process.popen.send_signal(signal.SIGHUP)
        wait_for(client, "/v1/ping/x", 200)
        assert client.get("/v1/search").status_code == 404
