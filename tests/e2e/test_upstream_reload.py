"""The bridge's upstream certificates re-read on SIGHUP, across real processes.

A `checkpoint-server serve` requiring client certificates (--tls-client-ca, a file the test
rewrites) and a `checkpoint-rest-bridge` calling it over mTLS with a client certificate the test
rotates. Certificates are made here: CA A signs the server's certificate and the bridge's first
client certificate, CA B the bridge's second one. The server at first trusts only CA A, so a
call made with B's certificate is refused at the handshake: that tells which certificate the
bridge presents on its new connections, while a watch stream opened before the SIGHUP shows
that calls already under way go on over the old channel.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.certs import Issued, issue, make_ca
from tests.e2e import (
    READ_SCOPE,
    WRITE_SCOPE,
    Process,
    create_token,
    import_checkpoints,
    start_bridge,
    start_server,
)
from tests.e2e.watching import Event, import_entry, sse_events

WAIT = 15.0
"""Seconds a step may take (the bridge reconnects within 1 s; the machine may be busy)."""


@dataclass
class Rig:
    server: Process
    bridge: Process
    bridge_url: str
    auth: dict[str, str]
    client_ca: Path
    """The server's --tls-client-ca file."""
    bridge_cert: Path
    bridge_key: Path
    ca_a: Issued
    ca_b: Issued


def _replace(path: Path, data: bytes) -> None:
    """Write path atomically, as a rotation tool would (readers never see half a file)."""
    temporary = path.with_suffix(".new")
    temporary.write_bytes(data)
    temporary.replace(path)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    work = tmp_path_factory.mktemp("upstream-reload")
    ca_a, ca_b = make_ca("CA A"), make_ca("CA B")
    ca_file, client_ca = work / "ca-a.pem", work / "client-ca.pem"
    ca_file.write_bytes(ca_a.cert_pem)
    client_ca.write_bytes(ca_a.cert_pem)
    server_cert, server_key = issue(ca_a, "localhost").write(work, "server")
    bridge_cert, bridge_key = issue(ca_a, "bridge-a", client=True).write(work, "bridge")
    tokens = work / "tokens.json"
    token = create_token(tokens, "rotation", [READ_SCOPE, WRITE_SCOPE])
    database = f"sqlite:///{work / 'reload.db'}"
    import_checkpoints(database, [import_entry("seeded")], work / "seed.json")
    tls = ["--tls-cert", str(server_cert), "--tls-key", str(server_key)]
    extra = [*tls, "--tls-client-ca", str(client_ca), "--rate-limit", "0"]
    server = start_server("reload-server", work, database, tokens, extra)
    try:
        upstream = ["--upstream-ca", str(ca_file), "--upstream-cert", str(bridge_cert)]
        upstream += ["--upstream-key", str(bridge_key)]
        bridge = start_bridge("reload-bridge", work, server.address, upstream)
    except BaseException:
        server.process.stop()
        raise
    yield Rig(
        server.process,
        bridge.process,
        bridge.base_url,
        {"Authorization": f"Bearer {token}"},
        client_ca,
        bridge_cert,
        bridge_key,
        ca_a,
        ca_b,
    )
    bridge.process.stop()
    server.process.stop()


def _wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT} s: {what}")
        time.sleep(0.1)


def _watch(client: httpx.Client, rig: Rig, events: list[Event], until: str) -> None:
    """Read the bridge's SSE watch into events until the checkpoint named until is created."""
    headers = {**rig.auth, "Accept": "text/event-stream"}
    with client.stream("GET", "/v1/checkpoints:watch", headers=headers) as response:
        assert response.status_code == 200, response.read()
        for event in sse_events(response.iter_lines()):
            events.append(event)
            if _created(events, until):
                return


def _created(events: list[Event], name: str) -> bool:
    return any(
        e.event == "created" and e.data["data"]["checkpoint"]["display_name"] == name
        for e in events
    )


def test_sighup_rotates_the_upstream_client_certificate(rig: Rig) -> None:
    """SIGHUP with a new client certificate: new calls present it (the server, trusting only
    CA A, refuses B's: 503), a watch stream opened before keeps going on the old channel; once
    the server trusts CA B the bridge is served again, without either process restarting. A bad
    file then is logged naming it, and the channel in use stays."""
    pids = (rig.server.popen.pid, rig.bridge.popen.pid)
    with httpx.Client(base_url=rig.bridge_url, timeout=10) as client:

        def create(name: str) -> int:
            body = import_entry(f"{name}-{time.monotonic_ns()}" if name == "b" else name)
            return client.post("/v1/checkpoints", json=body, headers=rig.auth).status_code

        assert create("before") == 200
        events: list[Event] = []
        with httpx.Client(base_url=rig.bridge_url, timeout=30) as watcher:
            args = (watcher, rig, events, "after")
            reader = threading.Thread(target=_watch, args=args, daemon=True)
            reader.start()
            _wait_for("the watch is synced", lambda: any(e.event == "synced" for e in events))

            rotated = issue(rig.ca_b, "bridge-b", client=True)
            _replace(rig.bridge_cert, rotated.cert_pem)
            _replace(rig.bridge_key, rotated.key_pem)
            os.kill(rig.bridge.popen.pid, signal.SIGHUP)
            statuses: list[int] = []

            def refused() -> bool:
                statuses.append(create("b"))
                return statuses[-1] == 503

            _wait_for("B's certificate refused by the server", refused)
            assert set(statuses) <= {200, 503}, statuses

            _replace(rig.client_ca, rig.ca_b.cert_pem)
            os.kill(rig.server.popen.pid, signal.SIGHUP)
            _wait_for("B's certificate accepted", lambda: create("after") == 200)

            reader.join(timeout=WAIT)
            assert _created(events, "after"), [e.event for e in events]

        rig.bridge_cert.write_text("not a certificate\n")
        os.kill(rig.bridge.popen.pid, signal.SIGHUP)
        logged = f"kept the current upstream channel: --upstream-cert {rig.bridge_cert}"
        _wait_for("the bad file logged", lambda: logged in rig.bridge.output())
        assert create("kept") == 200
    assert (rig.server.popen.poll(), rig.bridge.popen.poll()) == (None, None)
    assert (rig.server.popen.pid, rig.bridge.popen.pid) == pids
