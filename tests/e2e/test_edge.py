"""The listening edge of both REST doors over real sockets: the head size limit, the header
timeout under 1000 half-open connections, the connection cap, and HTTP/2 (h2c) on the same port.

Each test runs against the separate bridge and against `checkpoint-server serve --rest-listen`,
started here with --header-timeout 1 (so the timeout tests are short) and, for the cap,
--max-connections 3. Timings are printed for the note, and asserted only with wide margins.
"""

from __future__ import annotations

import json
import resource
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e import (
    ERROR_CODES,
    EXAMPLE_ID,
    Process,
    Tokens,
    bearer,
)
from tests.e2e.doors import serving_pair

HALF_OPEN = 1000
HEADER_TIMEOUT = 1.0
MiB = 1 << 20


@dataclass(frozen=True)
class Door:
    name: str
    base_url: str
    process: Process

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.base_url.removeprefix("http://").split(":")
        return host, int(port)


@contextmanager
def _serving_doors(
    work: Path, database: str, tokens: Path, name: str, edge: list[str]
) -> Iterator[dict[str, Door]]:
    """A server with --rest-listen and a bridge in front of its gRPC port, both with edge flags."""
    flags = ["--rate-limit", "0", "--grace", "1", *edge]
    with serving_pair(
        work, database, tokens, server_flags=flags, bridge_flags=edge, prefix=f"{name}-"
    ) as pair:
        yield {
            "inprocess": Door("inprocess", f"http://{pair.rest_address}", pair.server),
            "bridge": Door("bridge", f"http://{pair.bridge_address}", pair.bridge),
        }


@pytest.fixture(scope="module")
def doors(
    tmp_path_factory: pytest.TempPathFactory, e2e_tokens: Tokens, e2e_database: str
) -> Iterator[dict[str, Door]]:
    """Both doors with --header-timeout 1 and room for the half-open connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * HALF_OPEN
    if soft < wanted:  # the children inherit it: 1000 sockets on each side, and then some
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    edge = ["--header-timeout", str(HEADER_TIMEOUT), "--max-connections", str(HALF_OPEN + 100)]
    work = tmp_path_factory.mktemp("edge")
    with _serving_doors(work, e2e_database, e2e_tokens.path, "edge", edge) as started:
        yield started


@pytest.fixture(scope="module")
def capped(
    tmp_path_factory: pytest.TempPathFactory, e2e_tokens: Tokens
) -> Iterator[dict[str, Door]]:
    """Both doors with --max-connections 3 (and a header timeout longer than the test)."""
    work = tmp_path_factory.mktemp("edge-capped")
    edge = ["--max-connections", "3", "--header-timeout", "30"]
    database = f"sqlite:///{work / 'capped.db'}"
    with _serving_doors(work, database, e2e_tokens.path, "capped", edge) as started:
        yield started


DOORS = pytest.mark.parametrize("door_name", ["bridge", "inprocess"])


def _rss_kib(process: Process) -> int:
    for line in Path(f"/proc/{process.popen.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one HTTP/1.1 response with Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed before a response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split(" ")[1]), headers, body


def _big_head(size: int) -> bytes:
    return b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * size + b"\r\n\r\n"


@DOORS
def test_a_1_mib_header_is_431_and_memory_stays_flat(
    doors: dict[str, Door], door_name: str
) -> None:
    """A 1 MiB header is refused with 431 and the envelope (code invalid_argument), and ten of
    them leave the process's resident memory within 5 MiB of where it was."""
    door = doors[door_name]
    before = _rss_kib(door.process)
    elapsed: list[float] = []
    for _ in range(10):
        with socket.create_connection(door.address, timeout=10) as sock:
            started = time.perf_counter()
            sock.sendall(_big_head(MiB))
            status, headers, body = _read_response(sock)
            elapsed.append(time.perf_counter() - started)
        assert status == 431, body
        assert headers["content-type"] == "application/json"
        assert json.loads(body)["error"]["code"] == "invalid_argument"
    grown = _rss_kib(door.process) - before
    print(
        f"edge {door_name}: 1 MiB header -> 431 in {max(elapsed) * 1000:.1f} ms (max of 10); "
        f"RSS grew {grown} KiB"
    )
    assert grown < 5 * 1024, grown
    assert httpx.get(door.base_url + "/healthz", timeout=5).status_code == 200


@DOORS
def test_a_head_under_the_limit_is_served(doors: dict[str, Door], door_name: str) -> None:
    """A 15 000-byte header (under the 16 KiB default) is served as before."""
    response = httpx.get(
        doors[door_name].base_url + "/healthz", headers={"X-Pad": "p" * 15_000}, timeout=5
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"status": "ok"}}


def _poll_closed(socks: dict[socket.socket, float], until: float) -> dict[socket.socket, float]:
    """When each socket saw its peer close (EOF or reset), polled until the monotonic until."""
    closed: dict[socket.socket, float] = {}
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        while len(closed) < len(socks) and time.monotonic() < until:
            for key, _ in selector.select(timeout=0.05):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                try:
                    data = ready.recv(65536)
                except (ConnectionResetError, BlockingIOError) as exc:
                    data = b"" if isinstance(exc, ConnectionResetError) else b"x"
                if data == b"":
                    closed[ready] = time.monotonic()
                    selector.unregister(ready)
    return closed


@DOORS
def test_half_open_connections_are_closed_while_others_are_served(
    doors: dict[str, Door], door_name: str, e2e_tokens: Tokens
) -> None:
    """1000 connections that send half a head (every tenth nothing at all) are all closed
    within --header-timeout + 1 s of connecting, while a client on its own connection keeps
    getting its checkpoint (timed in its own process: tests/e2e/steady_client.py)."""
    door = doors[door_name]
    opened: dict[socket.socket, float] = {}
    host, port = door.address
    path = f"/v1/checkpoints/{EXAMPLE_ID}"
    client = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.steady_client", host, str(port), path, e2e_tokens.read],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert client.stdin is not None
    assert client.stdout is not None
    try:
        assert client.stdout.readline().strip() == "ready"
        for index in range(HALF_OPEN):
            sock = socket.create_connection(door.address, timeout=5)
            if index % 10:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Half: ")
            opened[sock] = time.monotonic()
        last = max(opened.values())
        client.stdin.write(f"{last + HEADER_TIMEOUT + 0.5}\n")
        client.stdin.flush()
        closed = _poll_closed(opened, last + HEADER_TIMEOUT + 1.5)
        timed = json.loads(client.stdout.readline())
    finally:
        for sock in opened:
            sock.close()
        client.kill()
        client.wait(timeout=10)
        client.stdin.close()
        client.stdout.close()
    assert {status for _, status in timed} == {200}, timed
    latencies = [seconds for seconds, _ in timed]
    late = [closed[s] - opened[s] for s in closed if closed[s] - opened[s] > HEADER_TIMEOUT + 1]
    latencies.sort()
    p99 = latencies[int(0.99 * (len(latencies) - 1))] * 1000
    print(
        f"edge {door_name}: {len(closed)}/{HALF_OPEN} half-open closed, slowest after "
        f"{max(closed[s] - opened[s] for s in closed):.2f} s; normal client {len(latencies)} "
        f"requests, p99 {p99:.1f} ms"
    )
    assert len(closed) == HALF_OPEN, f"{HALF_OPEN - len(closed)} connections still open"
    assert late == [], late[:5]
    assert len(latencies) >= 10
    assert p99 < 1000, p99


@DOORS
def test_past_max_connections_new_ones_are_refused_and_old_ones_served(
    capped: dict[str, Door], door_name: str
) -> None:
    """With --max-connections 3, a fourth connection gets 503 unavailable at once, while the
    three already open (one of them a kept-alive client) are still served."""
    door = capped[door_name]
    with httpx.Client(base_url=door.base_url, timeout=5) as client:
        assert client.get("/healthz").status_code == 200
        idle = [socket.create_connection(door.address, timeout=5) for _ in range(2)]
        try:
            time.sleep(0.2)
            with socket.create_connection(door.address, timeout=5) as extra:
                started = time.perf_counter()
                extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                status, headers, body = _read_response(extra)
                refused_in = time.perf_counter() - started
            assert status == 503, body
            assert headers["retry-after"] == "1"
            envelope = json.loads(body)
            assert envelope["error"]["code"] == "unavailable"
            assert envelope["error"]["code"] in ERROR_CODES
            assert refused_in < 2.0, refused_in
            assert client.get("/healthz").status_code == 200
            idle[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_response(idle[0])[0] == 200
        finally:
            for sock in idle:
                sock.close()


@DOORS
def test_h2c_with_prior_knowledge_through_curl(
    doors: dict[str, Door], door_name: str, e2e_tokens: Tokens
) -> None:
    """`curl --http2-prior-knowledge` gets HTTP/2 and the same body HTTP/1.1 gets."""
    url = f"{doors[door_name].base_url}/v1/checkpoints/{EXAMPLE_ID}"
    auth = f"Authorization: Bearer {e2e_tokens.read}"
    done = subprocess.run(
        [
            "curl",
            "-sS",
            "--http2-prior-knowledge",
            "-H",
            auth,
            "-w",
            "\n%{http_version} %{http_code}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    body, _, version = done.stdout.rpartition("\n")
    plain = httpx.get(url, headers=bearer(e2e_tokens.read), timeout=5)
    assert version == "2 200", done.stdout
    assert json.loads(body) == plain.json()
    assert plain.http_version == "HTTP/1.1"


@DOORS
def test_h2c_with_httpx_streams_and_its_own_431(
    doors: dict[str, Door], door_name: str, e2e_tokens: Tokens
) -> None:
    """httpx over h2c serves several requests on one connection, 404s keep the envelope, and a
    header list over the limit is 431 invalid_argument on its stream, the connection still up."""
    with httpx.Client(base_url=doors[door_name].base_url, http1=False, http2=True, timeout=5) as h2:
        found = h2.get(f"/v1/checkpoints/{EXAMPLE_ID}", headers=bearer(e2e_tokens.read))
        missing = h2.get("/v1/checkpoints/no-such-thing", headers=bearer(e2e_tokens.read))
        big = h2.get("/healthz", headers={"X-Big": "b" * 20_000})
        after = h2.get("/healthz")
    assert found.http_version == "HTTP/2"
    assert found.status_code == 200, found.text
    assert found.json()["data"]["id"] == EXAMPLE_ID
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert big.status_code == 431
    assert big.json()["error"]["code"] == "invalid_argument"
    assert after.status_code == 200
