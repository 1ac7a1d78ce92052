"""Two replicas scaled out: two `checkpoint-server` processes on one PostgreSQL database and one
Redis, each behind its own `checkpoint-rest-bridge`.

What must hold for replicas to be one service: concurrent creates of one display name through
different replicas have exactly one winner (the database decides, not a replica), a write through
one replica is read through the other, and a token's rate limit is one budget across both (the
buckets live in Redis). The database is a fresh one from tests/pg.py, Redis the one of
tests/redis.py; token names are unique per run, so their buckets are too. Every process is
stopped at teardown (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.e2e import (
    READ_SCOPE,
    WRITE_SCOPE,
    Bridge,
    GrpcServer,
    bearer,
    create_token,
    http_client,
    start_bridge,
    start_server,
)

RATE = 1
BURST = 3
ROUNDS = BURST
"""Race rounds: each takes one call from each racing token, so the burst covers them all."""

_T = TypeVar("_T")


@dataclass(frozen=True)
class Replicas:
    """Two bridges (each in front of its own server) and the tokens the test uses."""

    clients: tuple[httpx.Client, httpx.Client]
    racers: tuple[str, str]
    """One read-write token per bridge for the race (each starts with a full bucket)."""
    limited: str
    """A read-write token used only for the shared-budget check."""
    keyed: str
    """A read-write token used only for the Idempotency-Key race."""


def _body(name: str) -> dict[str, Any]:
    return {
        "display_name": name,
        "resources": {"limits": {"memory_mib": 2048}, "requests": {"memory_mib": 1024, "vcpus": 2}},
    }


def _start_both(
    stack: ExitStack, start: Callable[[str], _T], names: Sequence[str], stop: Callable[[_T], Any]
) -> list[_T]:
    """Start one process per name at once; each started one is stopped when stack closes."""
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        futures: list[Future[_T]] = [pool.submit(start, name) for name in names]
    started: list[_T] = []
    failure: BaseException | None = None
    for future in futures:
        try:
            item = future.result()
        except Exception as exc:
            failure = failure or exc
            continue
        stack.callback(stop, item)
        started.append(item)
    if failure is not None:
        raise failure
    return started


@pytest.fixture
def replicas(tmp_path: Path, postgres_database_url: str, redis_url: str) -> Iterator[Replicas]:
    """Two servers on one database and one Redis, rate-limited, each with its own bridge."""
    tokens = tmp_path / "tokens.json"
    run = uuid.uuid4().hex[:12]
    scopes = [READ_SCOPE, WRITE_SCOPE]
    # One after another: each command rewrites the tokens file.
    racers = (
        create_token(tokens, f"racer-a-{run}", scopes),
        create_token(tokens, f"racer-b-{run}", scopes),
    )
    limited = create_token(tokens, f"limited-{run}", scopes)
    keyed = create_token(tokens, f"keyed-{run}", scopes)
    extra = ["--rate-limit", str(RATE), "--rate-burst", str(BURST)]
    extra += ["--rate-limit-store", redis_url, "--db-pool-size", "2"]

    def server(name: str) -> GrpcServer:
        return start_server(name, tmp_path, postgres_database_url, tokens, extra=extra)

    with ExitStack() as stack:
        servers = _start_both(stack, server, ["server-a", "server-b"], lambda s: s.process.stop())
        assert servers[0].address != servers[1].address

        def bridge(name: str) -> Bridge:
            upstream = servers[0] if name == "bridge-a" else servers[1]
            return start_bridge(name, tmp_path, upstream.address)

        bridges = _start_both(stack, bridge, ["bridge-a", "bridge-b"], lambda b: b.process.stop())
        first = stack.enter_context(http_client(bridges[0].base_url))
        second = stack.enter_context(http_client(bridges[1].base_url))
        yield Replicas(clients=(first, second), racers=racers, limited=limited, keyed=keyed)


def _race(replicas: Replicas, name: str) -> list[httpx.Response]:
    """Create name through both bridges at the same instant (each with its own token)."""
    barrier = threading.Barrier(2)

    def create(side: int) -> httpx.Response:
        barrier.wait(timeout=10)
        return replicas.clients[side].post(
            "/v1/checkpoints", json=_body(name), headers=bearer(replicas.racers[side])
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(create, (0, 1)))


def _check_one_key_across_replicas(replicas: Replicas) -> None:
    """One keyed create sent through both replicas at once runs once (the other call replays
    it or is told it is running), and a later retry through the other replica replays it."""
    name, key = f"keyed-{uuid.uuid4().hex[:8]}", f"k-{uuid.uuid4()}"
    headers = {**bearer(replicas.keyed), "Idempotency-Key": key}
    barrier = threading.Barrier(2)

    def create(side: int) -> httpx.Response:
        barrier.wait(timeout=10)
        return replicas.clients[side].post("/v1/checkpoints", json=_body(name), headers=headers)

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(create, (0, 1)))
    fresh = [a for a in answers if a.status_code == 200 and "idempotent-replayed" not in a.headers]
    assert len(fresh) == 1, [(a.status_code, a.headers, a.text) for a in answers]
    other = next(a for a in answers if a is not fresh[0])
    assert other.status_code in (200, 409), other.text
    if other.status_code == 409:
        assert other.json()["error"]["code"] == "aborted"
    else:
        assert other.headers["idempotent-replayed"] == "true"
        assert other.content == fresh[0].content
    side = answers.index(fresh[0])
    retry = replicas.clients[1 - side].post("/v1/checkpoints", json=_body(name), headers=headers)
    assert retry.status_code == 200, retry.text
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.content == fresh[0].content


def test_two_replicas_act_as_one_service(replicas: Replicas) -> None:
    """Through two replicas on one database: one winner per contested name, one run per
    Idempotency-Key, reads see the other replica's writes, and a token's rate limit is one
    budget across both."""
    # Concurrent creates of one name through different replicas: exactly one winner.
    winners = []
    for round_ in range(ROUNDS):
        name = f"contested-{round_}-{uuid.uuid4().hex[:8]}"
        responses = _race(replicas, name)
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 409], [r.text for r in responses]
        won = next(r for r in responses if r.status_code == 200).json()["data"]
        lost = next(r for r in responses if r.status_code == 409).json()["error"]
        assert won["display_name"] == name
        assert lost["code"] == "already_exists", lost
        winners.append(won)
    assert len({w["id"] for w in winners}) == ROUNDS

    # One Idempotency-Key raced through both replicas: the create runs once.
    _check_one_key_across_replicas(replicas)

    # A write through one replica is read through the other; these are calls 1-3 of the token.
    a, b = replicas.clients
    auth = bearer(replicas.limited)
    started = time.monotonic()
    created = a.post("/v1/checkpoints", json=_body(f"shared-{uuid.uuid4().hex[:8]}"), headers=auth)
    assert created.status_code == 200, created.text
    checkpoint = created.json()["data"]
    by_id = b.get(f"/v1/checkpoints/{checkpoint['id']}", headers=auth)
    assert by_id.status_code == 200, by_id.text
    assert by_id.json()["data"] == checkpoint
    by_name = a.get(f"/v1/checkpoints/{checkpoint['display_name']}", headers=auth)
    assert by_name.status_code == 200, by_name.text
    assert by_name.json()["data"]["id"] == checkpoint["id"]

    # The token's burst is spent across both replicas: the next calls, alternating, are refused
    # (per-replica buckets would allow all four: b's server has seen the token once, a's twice).
    # Only what refills meanwhile (RATE per second) may go through.
    more = [
        client.get(f"/v1/checkpoints/{checkpoint['id']}", headers=auth) for client in (b, a) * 2
    ]
    elapsed = time.monotonic() - started
    statuses = [r.status_code for r in more]
    assert set(statuses) <= {200, 429}, [r.text for r in more]
    assert statuses.count(200) <= int(elapsed * RATE), (statuses, elapsed)
    refused = next(r for r in more if r.status_code == 429)
    assert refused.json()["error"]["code"] == "resource_exhausted"
    assert refused.headers["Retry-After"].isdigit()
    assert 1 <= int(refused.headers["Retry-After"]) <= 1 / RATE + 1
