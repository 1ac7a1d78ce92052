"""Hardening over real sockets: upstream faults and graceful shutdown.

One bridge (`--timeout 2`) points at a fixed free port on which the tests start, SIGKILL,
restart and SIGTERM `checkpoint-server serve` while client threads keep calling through the
bridge: every answer must be a JSON envelope, never a hang, a broken response or an internal
address. A second bridge, in front of a stand-in gRPC server in this process that answers after
0.2 s, is SIGTERMed under load: every request it accepted gets its complete answer.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import grpc
import httpx
import pytest
from checkpoint.v1 import checkpoint_pb2 as pb
from checkpoint.v1 import checkpoint_service_pb2 as svc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e import (
    ERROR_CODES,
    SERVICE,
    Bridge,
    Process,
    StandInUpstream,
    Tokens,
    bearer,
    executable,
    free_port,
    http_client,
    start,
    start_bridge,
)

INTERNAL_ADDRESS = re.compile(r"127\.0\.0\.1|ipv4:|ipv6:|\[::1\]|localhost", re.IGNORECASE)
RECOVERY_LIMIT = 5.0
ANSWER_LIMIT = 5.0
UPSTREAM_DELAY = 0.2


@dataclass
class Outcome:
    """One client call: when it ran, and its status and body or the transport error."""

    request_id: str
    started: float
    ended: float
    status: int | None = None
    content_type: str = ""
    body: str = ""
    error: str = ""

    def problem(self) -> str | None:
        """Why this answer breaks the contract's envelope rules, or None."""
        if self.error:
            return f"transport error {self.error}"
        if not self.content_type.startswith("application/json"):
            return f"not JSON ({self.content_type}): {self.body[:200]!r}"
        try:
            body = json.loads(self.body)
        except ValueError:
            return f"body is not JSON: {self.body[:200]!r}"
        if self.status == 200:
            return None if isinstance(body, dict) and set(body) == {"data"} else self.body
        if not isinstance(body, dict) or set(body) != {"error"}:
            return f"not an error envelope: {self.body[:200]!r}"
        if body["error"].get("code") not in ERROR_CODES or not body["error"].get("message"):
            return f"bad error envelope: {self.body[:200]!r}"
        if INTERNAL_ADDRESS.search(self.body):
            return f"names an internal address: {self.body[:200]!r}"
        return None


@dataclass
class Traffic:
    """Client threads calling GET path through a bridge until stopped, recording every call."""

    base_url: str
    token: str
    path: str = "/v1/checkpoints"
    threads: int = 3
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Traffic:
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, args=(index,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=ANSWER_LIMIT + 5)

    def _run(self, index: int) -> None:
        count = 0
        with httpx.Client(base_url=self.base_url, timeout=ANSWER_LIMIT * 2) as client:
            while not self._stop.is_set():
                count += 1
                rid = f"t{index}-{count}"
                outcome = Outcome(rid, time.monotonic(), 0.0)
                try:
                    response = client.get(
                        self.path, headers={**bearer(self.token), "X-Request-Id": rid}
                    )
                    outcome.status = response.status_code
                    outcome.content_type = response.headers.get("content-type", "")
                    outcome.body = response.text
                except httpx.HTTPError as exc:
                    outcome.error = f"{type(exc).__name__}: {exc}"
                outcome.ended = time.monotonic()
                with self._lock:
                    self.outcomes.append(outcome)
                time.sleep(0.01)

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def wait_for(self, status: int, after: float, timeout: float) -> float | None:
        """When the first call started after `after` answered status, polled until timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [o.ended for o in self.snapshot() if o.started >= after and o.status == status]
            if hits:
                return min(hits)
            time.sleep(0.02)
        return None


@dataclass(frozen=True)
class FaultsEnv:
    work: Path
    database: str
    tokens: Path
    port: int
    bridge: Bridge


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory, e2e_tokens: Tokens) -> Iterator[FaultsEnv]:
    """A bridge whose upstream is a fixed free port with no server on it yet."""
    work: Path = tmp_path_factory.mktemp("hardening-faults")
    port = free_port()
    bridge = start_bridge(
        "faults-bridge", work, f"127.0.0.1:{port}", ["--timeout", "2"], ready="/healthz"
    )
    yield FaultsEnv(work, f"sqlite:///{work / 'faults.db'}", e2e_tokens.path, port, bridge)
    bridge.process.stop()


_STARTS = Counter[str]()


def _serve_on(env: FaultsEnv, name: str) -> Process:
    """`checkpoint-server serve` on env's fixed port, returned once it prints its address."""
    _STARTS[name] += 1
    args = [executable("checkpoint-server"), "serve", "--listen", f"127.0.0.1:{env.port}"]
    args += ["--database", env.database, "--tokens", str(env.tokens), "--grace", "1"]
    args += ["--rate-limit", "0"]
    process = start(f"{name}-{_STARTS[name]}", args, env.work)
    try:
        process.wait_for_output(re.compile(r"serving gRPC on \S+"))
    except RuntimeError:
        process.stop()
        raise
    return process


def _wait_ready(base_url: str, timeout: float) -> float | None:
    """Seconds until the bridge's /readyz answers 200, or None after timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return None


def _problems(outcomes: list[Outcome]) -> list[str]:
    found = []
    for outcome in outcomes:
        problem = outcome.problem()
        if problem is None and outcome.ended - outcome.started > ANSWER_LIMIT:
            problem = f"took {outcome.ended - outcome.started:.1f} s"
        if problem is not None:
            found.append(f"{outcome.request_id} [{outcome.status}] {problem}")
    return found


def test_bridge_started_before_its_server_is_not_ready_and_fails_fast(
    faults: FaultsEnv, e2e_tokens: Tokens
) -> None:
    """With nothing on the upstream port, /readyz is 503 and calls are 503 in under a second,
    naming no address; /healthz is 200."""
    with http_client(faults.bridge.base_url) as client:
        ready = client.get("/readyz")
        timings, answers = [], []
        for _ in range(5):
            started = time.monotonic()
            answers.append(client.get("/v1/checkpoints", headers=bearer(e2e_tokens.read)))
            timings.append(time.monotonic() - started)
        alive = client.get("/healthz")
    assert ready.status_code == 503
    assert ready.json()["error"]["code"] == "unavailable"
    assert [a.status_code for a in answers] == [503] * 5
    assert {a.json()["error"]["code"] for a in answers} == {"unavailable"}
    assert not any(INTERNAL_ADDRESS.search(a.text) for a in answers)
    assert max(timings) < 1.0, timings
    assert alive.status_code == 200


def test_server_sigkilled_mid_traffic_and_restarted_on_the_same_port(
    faults: FaultsEnv, e2e_tokens: Tokens
) -> None:
    """SIGKILL the server under load, restart it on the same port: the bridge recovers by itself
    within seconds, and meanwhile every answer is a JSON envelope (200, 503 or 504), never a
    hang, a broken response or an internal address."""
    server = _serve_on(faults, "killed-server")
    restarted: Process | None = None
    try:
        assert _wait_ready(faults.bridge.base_url, 10) is not None, server.output()
        with Traffic(faults.bridge.base_url, e2e_tokens.read) as traffic:
            first_ok = traffic.wait_for(200, 0.0, 5)
            time.sleep(0.5)
            killed_at = time.monotonic()
            server.popen.kill()
            server.popen.wait(timeout=10)
            time.sleep(0.5)
            restarted = _serve_on(faults, "killed-server")
            restarted_at = time.monotonic()
            recovery = _wait_ready(faults.bridge.base_url, RECOVERY_LIMIT + 5)
            served_again = traffic.wait_for(200, restarted_at, RECOVERY_LIMIT + 5)
            time.sleep(0.5)
        outcomes = traffic.snapshot()
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()
    outage = [o for o in outcomes if o.ended > killed_at and o.started < restarted_at]
    statuses = Counter(o.status for o in outcomes)
    print(
        f"SIGKILL + restart: {len(outcomes)} calls {dict(statuses)}; "
        f"{len(outage)} during the outage; readyz back after {recovery} s; "
        f"traffic back after {None if served_again is None else served_again - restarted_at} s"
    )
    assert first_ok is not None, "no call succeeded before the kill"
    assert _problems(outcomes) == []
    assert set(statuses) <= {200, 503, 504}, statuses
    assert outage, "no call ran during the outage"
    assert recovery is not None, "the bridge never became ready again"
    assert recovery < RECOVERY_LIMIT, recovery
    assert served_again is not None
    assert served_again - restarted_at < RECOVERY_LIMIT
    tail = [o for o in outcomes if o.started > served_again]
    assert tail, "no calls after recovery"
    assert {o.status for o in tail} == {200}, Counter(o.status for o in tail)


def test_server_sigterm_under_load_drains_cleanly(faults: FaultsEnv, e2e_tokens: Tokens) -> None:
    """SIGTERM the server under load: it exits 0 within its grace, and every answer through the
    bridge meanwhile is 200 or a clean JSON 503 (never 499 "cancelled": the client cancelled
    nothing)."""
    server = _serve_on(faults, "drained-server")
    try:
        assert _wait_ready(faults.bridge.base_url, 10) is not None, server.output()
        with Traffic(faults.bridge.base_url, e2e_tokens.read, threads=12) as traffic:
            assert traffic.wait_for(200, 0.0, 5) is not None
            time.sleep(0.3)
            sigterm_at = time.monotonic()
            server.popen.send_signal(signal.SIGTERM)
            code = server.popen.wait(timeout=15)
            stopped_at = time.monotonic()
            time.sleep(0.3)
        outcomes = traffic.snapshot()
    finally:
        server.stop()
    statuses = Counter(o.status for o in outcomes)
    print(
        f"server SIGTERM under load: exit {code}; drain took {stopped_at - sigterm_at:.2f} s; "
        f"{len(outcomes)} calls {dict(statuses)}"
    )
    odd = [
        f"{o.request_id} {o.status} started {o.started - sigterm_at:+.3f} s from SIGTERM: {o.body}"
        for o in outcomes
        if o.status not in (200, 503)
    ]
    assert code == 0, server.output()
    assert stopped_at - sigterm_at < 1 + 2.0  # --grace 1, plus process exit
    assert _problems(outcomes) == []
    assert set(statuses) <= {200, 503}, (statuses, odd)
    after = [o for o in outcomes if o.started > stopped_at]
    assert after, "no calls after the server stopped"
    assert {o.status for o in after} == {503}
    assert "Traceback" not in server.output()


def test_health_watch_sees_not_serving_on_sigterm(faults: FaultsEnv) -> None:
    """A grpc.health.v1 Watch open at SIGTERM is told NOT_SERVING before the drain; the server
    exits 0 within its grace (1 s) even though the stream never ends by itself, and the
    watcher's stream is then closed, not left hanging."""
    server = _serve_on(faults, "watched-server")
    ended: grpc.StatusCode | None = None
    try:
        with grpc.insecure_channel(f"127.0.0.1:{faults.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)  # type: ignore[no-untyped-call]
            watch = stub.Watch(health_pb2.HealthCheckRequest(service=SERVICE), timeout=20)
            seen = [next(watch).status]
            sigterm_at = time.monotonic()
            server.popen.send_signal(signal.SIGTERM)
            seen.append(next(watch).status)
            code = server.popen.wait(timeout=15)
            exit_seconds = time.monotonic() - sigterm_at
            ended = _stream_end(watch)
    finally:
        server.stop()
    print(f"health watch: {seen}; exit {code} after {exit_seconds:.2f} s; stream ended {ended}")
    assert seen == [
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    ]
    assert code == 0, server.output()
    assert exit_seconds < 1 + 2.0, exit_seconds
    assert ended in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE), ended


def _stream_end(stream: Iterator[health_pb2.HealthCheckResponse]) -> grpc.StatusCode | None:
    """The status code that ends a server stream (None if it ends with OK)."""
    try:
        for _ in stream:
            pass
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()
        return code
    return None


class DelayedUpstream(StandInUpstream):
    """A stand-in whose GetCheckpoint answers a checkpoint after UPSTREAM_DELAY; it records the
    x-request-id of every call that reached it."""

    def __init__(self) -> None:
        self.request_ids: set[str] = set()
        self._lock = threading.Lock()
        super().__init__(self._get)

    def _get(
        self, request: svc.GetCheckpointRequest, context: grpc.ServicerContext
    ) -> svc.GetCheckpointResponse:
        rid = next((str(v) for k, v in context.invocation_metadata() if k == "x-request-id"), "")
        with self._lock:
            self.request_ids.add(rid)
        time.sleep(UPSTREAM_DELAY)
        return svc.GetCheckpointResponse(
            checkpoint=pb.Checkpoint(
                id="0b7f6a1e-2c3d-4e5f-8a9b-0c1d2e3f4a5b",
                display_name=request.checkpoint_id,
                state=pb.CHECKPOINT_STATE_READY,
            )
        )


def test_bridge_sigterm_under_load_answers_every_accepted_request(
    faults: FaultsEnv, e2e_tokens: Tokens
) -> None:
    """SIGTERM the bridge while calls are in flight: it exits 0, every call that reached the
    upstream got its complete 200, and nothing else got a broken answer."""
    upstream = DelayedUpstream()
    bridge: Bridge | None = None
    try:
        bridge = start_bridge("term-bridge", faults.work, upstream.address)
        with Traffic(bridge.base_url, e2e_tokens.read, path="/v1/checkpoints/steady") as traffic:
            assert traffic.wait_for(200, 0.0, 5) is not None
            time.sleep(0.5)
            sigterm_at = time.monotonic()
            bridge.process.popen.send_signal(signal.SIGTERM)
            code = bridge.process.popen.wait(timeout=15)
            stopped_at = time.monotonic()
            time.sleep(0.3)
        outcomes = traffic.snapshot()
    finally:
        if bridge is not None:
            bridge.process.stop()
        upstream.stop()
    answered = [o for o in outcomes if o.status is not None]
    refused = [o for o in outcomes if o.status is None]
    in_flight = [o for o in answered if o.started < sigterm_at < o.ended]
    reached = upstream.request_ids
    unanswered = [o.request_id for o in refused if o.request_id in reached]
    print(
        f"bridge SIGTERM: exit {code}; drain {stopped_at - sigterm_at:.2f} s; "
        f"{len(answered)} answered ({len(in_flight)} in flight at SIGTERM), "
        f"{len(refused)} refused: {Counter(o.error.split(':')[0] for o in refused)}"
    )
    assert code == 0, bridge.process.output()
    assert in_flight, "no call was in flight at SIGTERM"
    assert _problems(answered) == []
    assert {o.status for o in answered} == {200}
    assert unanswered == [], "calls that reached the upstream got no answer"
    assert {o.request_id for o in answered if o.status == 200} <= reached
