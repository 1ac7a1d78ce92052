"""`scripts/run_demo.py` (what `make run` starts): demo data, a printed token, commands that work.

The script runs on free ports (its --grpc-listen and --rest-listen), twice in the same directory
to show that re-running works, and is stopped with SIGTERM like a Ctrl-C would stop it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e import REPO, Process, check_envelope, free_port, start

DEMO_DATA = REPO / "scripts" / "demo_checkpoints.json"
_TOKEN = re.compile(r"export TOKEN='(ckpt_[A-Za-z0-9_-]+)'")


@dataclass(frozen=True)
class Demo:
    process: Process
    token: str
    banner: str
    grpc: str
    rest: str
    metrics: tuple[str, str]


def run_demo(directory: Path, log_dir: Path, name: str) -> Demo:
    """Start run_demo.py and return once it printed its banner (both servers ready)."""
    grpc, rest = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    metrics = (f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
    args = [sys.executable, str(REPO / "scripts" / "run_demo.py"), "--dir", str(directory)]
    args += ["--metrics-listen", metrics[0], "--rest-metrics-listen", metrics[1]]
    process = start(name, [*args, "--grpc-listen", grpc, "--rest-listen", rest], log_dir)
    try:
        token_line = process.wait_for_output(_TOKEN, timeout=40)
        process.wait_for_output(re.compile(r"Ctrl-C stops both servers\.\n=+\n"), timeout=5)
    except RuntimeError:
        process.stop()
        raise
    found = _TOKEN.search(token_line)
    assert found is not None
    text = process.stdout.read_text(encoding="utf-8")
    return Demo(process, found.group(1), text, grpc, rest, metrics)


def port_open(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, int(port))) == 0


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory both demo runs share."""
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def demo(demo_dir: Path) -> Iterator[Demo]:
    """A running demo (first run in demo_dir)."""
    started = run_demo(demo_dir / "run", demo_dir, "demo-1")
    yield started
    started.process.stop()


def test_demo_serves_every_demo_checkpoint_with_the_printed_token(demo: Demo) -> None:
    """Each checkpoint of demo_checkpoints.json is served over REST with the printed token."""
    expected = json.loads(DEMO_DATA.read_text(encoding="utf-8"))
    assert 4 <= len(expected) <= 5
    assert any(" " in entry["display_name"] for entry in expected)
    with httpx.Client(
        base_url=f"http://{demo.rest}", event_hooks={"response": [check_envelope]}
    ) as client:
        for entry in expected:
            response = client.get(
                f"/v1/checkpoints/{entry['display_name'].replace(' ', '%20')}",
                headers={"Authorization": f"Bearer {demo.token}"},
            )
            assert response.status_code == 200, response.text
            data = response.json()["data"]
            assert {k: data[k] for k in ("id", "display_name", "resources", "state")} == {
                k: entry[k] for k in ("id", "display_name", "resources", "state")
            }


def test_printed_curl_commands_work_as_pasted(demo: Demo) -> None:
    """Every `curl` line of the banner, with $TOKEN set, answers 200 with data."""
    lines = [line.strip() for line in demo.banner.splitlines() if line.strip().startswith("curl ")]
    assert len(lines) >= 2
    for line in lines:
        words = shlex.split(line.replace("$TOKEN", demo.token))
        headers = [words[i + 1] for i, word in enumerate(words) if word == "-H"]
        url = words[-1]
        assert url.startswith(f"http://{demo.rest}/")
        response = httpx.get(url, headers=dict(h.split(": ", 1) for h in headers), timeout=10)
        assert response.status_code == 200, (line, response.text)
        assert "data" in response.json()


def test_printed_buf_curl_command_works_as_pasted(demo: Demo) -> None:
    """The banner's `buf curl` GetCheckpoint command, run by bash from the repo root, succeeds."""
    start_at = demo.banner.index("buf curl --protocol grpc --http2-prior-knowledge -H")
    line_start = demo.banner.rindex("\n", 0, start_at) + 1
    end = demo.banner.index("/GetCheckpoint", start_at) + len("/GetCheckpoint")
    command = demo.banner[line_start:end]
    result = subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
        env={**os.environ, "TOKEN": demo.token},
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, (command, result.stderr)
    assert json.loads(result.stdout)["checkpoint"]["displayName"] == "postgres 16 warm cache"


def test_readme_examples_work_against_the_demo(demo: Demo) -> None:
    """The README's curl and buf curl examples work as pasted (ports aside) and the first one
    answers exactly the JSON the README shows."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    examples = re.findall(r"```sh\n(.*?)```", readme, re.DOTALL)[1]
    shown = json.loads(re.findall(r"```json\n(.*?)```", readme, re.DOTALL)[0])
    examples = examples.replace("127.0.0.1:8080", demo.rest).replace("127.0.0.1:50051", demo.grpc)
    commands = [c.strip() for c in examples.replace("\\\n", " ").splitlines() if c.strip()]
    curls = [c for c in commands if c.startswith("curl ")]
    bufs = [c for c in commands if c.startswith(".venv/bin/buf curl ")]
    assert len(curls) >= 1
    assert len(bufs) >= 1
    answers = []
    for line in curls:
        words = shlex.split(line.replace("$TOKEN", demo.token))
        headers = [words[i + 1] for i, word in enumerate(words) if word == "-H"]
        response = httpx.get(words[-1], headers=dict(h.split(": ", 1) for h in headers), timeout=10)
        assert response.status_code == 200, (line, response.text)
        answers.append(response.json())
    assert answers[0] == shown
    for line in bufs:
        result = subprocess.run(
            ["bash", "-c", line],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=REPO,
            env={**os.environ, "TOKEN": demo.token},
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, (line, result.stderr)
        assert "checkpoint" in json.loads(result.stdout)


def test_banner_prints_metrics_urls_that_answer(demo: Demo) -> None:
    """The banner names both /metrics URLs, and each serves its process's Prometheus families."""
    families = {
        demo.metrics[0]: "grpc_server_handled_total",
        demo.metrics[1]: "http_server_request_duration_seconds",
    }
    for address, family in families.items():
        url = f"http://{address}/metrics"
        assert url in demo.banner
        response = httpx.get(url, timeout=5.0)
        assert response.status_code == 200
        assert f"# TYPE {family} " in response.text


def test_readme_idempotency_and_docs_example_works_against_the_demo(demo: Demo) -> None:
    """The README's Idempotency-Key block, run by bash as pasted (ports aside): the retry repeats
    the first body with Idempotent-Replayed: true, and /docs answers HTML."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Idempotent creates and the docs UI", 1)[1]
    block = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)[0]
    script = block.replace("127.0.0.1:8080", demo.rest)
    result = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
        env={**os.environ, "TOKEN": demo.token},
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    first, rest = result.stdout.split("\n", 1)
    head, tail = rest.split("\n\n", 1)  # text mode: the headers' CRLFs read as LFs
    body, docs, _ = tail.split("\n")
    assert json.loads(first)["data"]["display_name"].startswith("example-")
    assert "idempotent-replayed: true" in head.lower()
    assert body == first
    assert docs == "200 text/html; charset=utf-8"
    created = json.loads(first)["data"]["id"]
    cleanup = httpx.delete(
        f"http://{demo.rest}/v1/checkpoints/{created}",
        headers={"Authorization": f"Bearer {demo.token}"},
        timeout=10,
    )
    assert cleanup.status_code == 200  # the demo's data stays as imported, for the rerun test


def test_sigterm_stops_both_servers_and_exits_0(demo: Demo) -> None:
    """SIGTERM (what Ctrl-C amounts to) stops the gRPC server and the bridge; the script exits 0."""
    assert port_open(demo.grpc)
    assert port_open(demo.rest)
    assert demo.process.stop() == 0
    assert not port_open(demo.grpc)
    assert not port_open(demo.rest)
    assert "stopped" in demo.process.stdout.read_text(encoding="utf-8")


def test_rerunning_the_demo_works(demo_dir: Path, demo: Demo) -> None:
    """A second run in the same directory imports again, prints a new token and serves."""
    demo.process.stop()
    again = run_demo(demo_dir / "run", demo_dir, "demo-2")
    try:
        assert again.token != demo.token
        response = httpx.get(
            f"http://{again.rest}/v1/checkpoints/ubuntu-24.04-base",
            headers={"Authorization": f"Bearer {again.token}"},
            timeout=10,
        )
        assert response.status_code == 200
        listing = httpx.get(
            f"http://{again.rest}/v1/checkpoints",
            headers={"Authorization": f"Bearer {again.token}"},
            timeout=10,
        )
        assert listing.status_code == 200
        assert len(listing.json()["data"]["checkpoints"]) == len(
            json.loads(DEMO_DATA.read_text(encoding="utf-8"))
        )
    finally:
        assert again.process.stop() == 0
