"""WatchCheckpoints over REST through both doors: the separate bridge and `serve --rest-listen`.

One server (SQLite, its own database) serves REST in-process and has a bridge in front of it;
every test runs against each door. Then a server with --max-watchers 1 shows the 429, that a
client going away frees its slot at once, and that SIGTERM ends a stream with a last
`event: error` of code unavailable.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openapi_schema_validator import OAS31Validator

from tests.e2e import (
    READ_SCOPE,
    WRITE_SCOPE,
    GrpcServer,
    create_token,
    free_port,
    import_checkpoints,
    start_bridge,
    start_server,
)
from tests.e2e.watching import Event, import_entry, sse_events

SSE = {"Accept": "text/event-stream"}
WATCH = "/v1/checkpoints:watch"


class Door:
    def __init__(self, base_url: str, token: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=10)
        self.auth = {"Authorization": f"Bearer {token}"}

    def patch_state(self, name: str, state: str) -> None:
        response = self.client.patch(
            f"/v1/checkpoints/{name}", json={"state": state}, headers=self.auth
        )
        assert response.status_code == 200, response.text

    def create(self, name: str) -> None:
        response = self.client.post("/v1/checkpoints", json=import_entry(name), headers=self.auth)
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def doors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Door]]:
    """The same server through its in-process REST port and through a separate bridge."""
    tmp = tmp_path_factory.mktemp("watch-rest")
    tokens = tmp / "tokens.json"
    token = create_token(tokens, "rest-watcher", [READ_SCOPE, WRITE_SCOPE])
    database = f"sqlite:///{tmp / 'watch.db'}"
    import_checkpoints(database, [import_entry("rest-seeded")], tmp / "seed.json")
    listen = f"127.0.0.1:{free_port()}"
    extra = ["--rate-limit", "0", "--rest-listen", listen, "--heartbeat", "0.5"]
    server = start_server("watch-rest-server", tmp, database, tokens, extra=extra)
    bridge = start_bridge("watch-rest-bridge", tmp, server.address, ["--timeout", "1"])
    opened = {"bridge": Door(bridge.base_url, token), "inprocess": Door(f"http://{listen}", token)}
    try:
        yield opened
    finally:
        for door in opened.values():
            door.client.close()
        bridge.process.stop()
        server.process.stop()


@pytest.fixture(params=["bridge", "inprocess"])
def door(request: pytest.FixtureRequest, doors: dict[str, Door]) -> Door:
    """Each REST door in turn."""
    return doors[request.param]


def _events_until(
    door: Door, params: dict[str, str], headers: dict[str, str], stop: str, out: list[Event]
) -> None:
    with door.client.stream(
        "GET", WATCH, params=params, headers={**door.auth, **headers}
    ) as response:
        assert response.status_code == 200, response.read()
        for event in sse_events(response.iter_lines()):
            out.append(event)
            if event.event == stop:
                return


def test_sse_watch_sees_a_checkpoint_become_ready(door: Door) -> None:
    """The snapshot, synced, then the PATCH that makes the checkpoint ready, as SSE events."""
    name = f"ready-{id(door)}-{time.monotonic_ns()}"
    door.create(name)
    events: list[Event] = []
    reader = threading.Thread(
        target=_events_until,
        args=(door, {"checkpoint_id": name}, SSE, "updated", events),
        daemon=True,
    )
    reader.start()
    deadline = time.monotonic() + 10
    while not any(e.event == "synced" for e in events) and time.monotonic() < deadline:
        time.sleep(0.02)
    door.patch_state(name, "ready")
    reader.join(timeout=10)
    assert [e.event for e in events] == ["existing", "synced", "updated"]
    assert events[2].data["data"]["checkpoint"]["state"] == "ready"
    assert events[2].data["data"]["type"] == "updated"
    assert events[2].id == events[2].data["data"]["resume_token"]
    assert "checkpoint" not in events[1].data["data"]


def test_last_event_id_resumes_without_a_snapshot(door: Door) -> None:
    """A reconnect with Last-Event-ID gets what committed after it, nothing before."""
    first: list[Event] = []
    _events_until(door, {}, SSE, "synced", first)
    name = f"after-{time.monotonic_ns()}"
    door.create(name)
    resumed: list[Event] = []
    _events_until(door, {}, {**SSE, "Last-Event-ID": first[-1].id}, "created", resumed)
    assert [(e.event, e.data["data"]["checkpoint"]["display_name"]) for e in resumed] == [
        ("created", name)
    ]


def test_ndjson_watch_and_errors_before_the_first_event(door: Door) -> None:
    """NDJSON lines by default; 401, 404 and 422 answered as ordinary HTTP errors."""
    with door.client.stream("GET", WATCH, headers=door.auth) as response:
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = response.iter_lines()
        types = []
        for line in lines:
            types.append(json.loads(line)["data"]["type"])
            if types[-1] == "synced":
                break
    assert types[-1] == "synced"
    assert set(types[:-1]) == {"existing"}
    assert door.client.get(WATCH).status_code == 401
    missing = door.client.get(WATCH, params={"checkpoint_id": "nope"}, headers=door.auth)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    forged = door.client.get(WATCH, headers={**door.auth, **SSE, "Last-Event-ID": "forged"})
    assert (forged.status_code, forged.json()["error"]["code"]) == (422, "invalid_argument")


def _limited(tmp: Path) -> tuple[GrpcServer, Door]:
    tokens = tmp / "tokens.json"
    token = create_token(tokens, "limited-watcher", [READ_SCOPE])
    listen = f"127.0.0.1:{free_port()}"
    extra = ["--rate-limit", "0", "--rest-listen", listen, "--max-watchers", "1"]
    server = start_server(
        "watch-limited", tmp, f"sqlite:///{tmp / 'w.db'}", tokens, extra=[*extra, "--grace", "5"]
    )
    return server, Door(f"http://{listen}", token)


@contextlib.contextmanager
def _watch_once_freed(door: Door) -> Iterator[httpx.Response]:
    """An SSE watch opened as soon as the one slot is free again: within 2 s of the previous
    stream's close (the server learns of it from its socket, later on a loaded machine)."""
    freed_by = time.monotonic() + 2
    while True:
        with door.client.stream("GET", WATCH, headers={**door.auth, **SSE}) as response:
            if response.status_code != 429:
                yield response
                return
        assert time.monotonic() < freed_by, "a closed stream kept its slot"
        time.sleep(0.05)


def test_watcher_limit_disconnect_and_sigterm(tmp_path: Path) -> None:
    """Over --max-watchers is 429 with Retry-After; a closed stream frees its slot promptly;
    SIGTERM ends an open stream with a last error event (unavailable) and the process exits."""
    server, door = _limited(tmp_path)
    try:
        with door.client.stream("GET", WATCH, headers={**door.auth, **SSE}) as response:
            held = sse_events(response.iter_lines())  # kept: closing it closes the stream
            assert next(held).event == "synced"
            refused = door.client.get(WATCH, headers=door.auth)
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "1"
        with _watch_once_freed(door) as response:
            assert response.status_code == 200
            events = sse_events(response.iter_lines())
            assert next(events).event == "synced"
            started = time.monotonic()
            server.process.popen.terminate()
            last = next(events)
        assert (last.event, last.data["error"]["code"]) == ("error", "unavailable")
        assert server.process.popen.wait(timeout=5) == 0
        assert time.monotonic() - started < 3
    finally:
        door.client.close()
        server.process.stop()


def test_documented_stream_schema_accepts_the_real_lines(doors: dict[str, Door]) -> None:
    """Each NDJSON line of a real watch validates against the documented stream item schema."""
    door = doors["bridge"]
    spec = door.client.get("/openapi.json").json()
    operation = spec["paths"][WATCH]["get"]
    content = operation["responses"]["200"]["content"]
    assert set(content) == {"text/event-stream", "application/x-ndjson"}
    assert {"Accept", "Last-Event-ID"} <= {p["name"] for p in operation["parameters"]}
    validator = OAS31Validator(
        {**content["application/x-ndjson"]["schema"], "components": spec["components"]}
    )
    with door.client.stream("GET", WATCH, headers=door.auth) as response:
        items = []
        for line in response.iter_lines():
            items.append(json.loads(line))
            if items[-1]["data"]["type"] == "synced":
                break
    assert len(items) >= 2
    for item in items:
        assert list(validator.iter_errors(item)) == []
    assert not validator.is_valid({"data": {"type": "bogus", "resume_token": ""}})
