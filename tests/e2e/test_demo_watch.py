"""The README's watch example against `make run`: `curl -N` and `buf curl` see the PATCH.

The README's "Watching" commands run as pasted (ports aside) with bash from the repository root:
both watchers start, then the PATCH makes `ci-runner-large` ready, and each watcher prints the
`updated` event with state ready.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import REPO
from tests.e2e.test_demo import Demo, run_demo


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """A running demo of its own (the PATCH changes its data)."""
    started = run_demo(tmp_path / "run", tmp_path, "demo-watch")
    yield started
    started.process.stop()


def _watch_section() -> tuple[list[str], str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Watching") :]
    watch, patch = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)[:2]

    def commands(block: str) -> list[str]:
        return [c.strip() for c in block.replace("\\\n", " ").splitlines() if c.strip()]

    (patch_command,) = commands(patch)
    return commands(watch), patch_command


def _wait_for(path: Path, text: str, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = path.read_text(encoding="utf-8", errors="replace")
        if text in found:
            return found
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"{text!r} never appeared in {path}: {found!r}")


def test_readme_watch_example_sees_the_checkpoint_become_ready(demo: Demo, tmp_path: Path) -> None:
    """Both README watchers print synced, then the update the README's PATCH makes."""
    watchers, patch = _watch_section()
    assert [w.split()[0] for w in watchers] == ["curl", ".venv/bin/buf"]
    env = {**os.environ, "TOKEN": demo.token}

    def local(command: str) -> str:
        return command.replace("127.0.0.1:8080", demo.rest).replace("127.0.0.1:50051", demo.grpc)

    running = []
    for index, command in enumerate(watchers):
        out = tmp_path / f"watch-{index}.out"
        with out.open("wb") as sink:
            process = subprocess.Popen(
                ["bash", "-c", f"exec {local(command)}"],
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
                env=env,
            )
        running.append((process, out))
    try:
        _wait_for(running[0][1], "event: synced", running[0][0])
        _wait_for(running[1][1], "WATCH_EVENT_TYPE_SYNCED", running[1][0])
        result = subprocess.run(
            ["bash", "-c", local(patch)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            cwd=REPO,
            env=env,
        )
        assert result.returncode == 0, result.stderr
        assert '"state":"ready"' in result.stdout
        sse = _wait_for(running[0][1], "event: updated", running[0][0])
        assert '"state":"ready"' in sse.split("event: updated", 1)[1]
        grpc_out = _wait_for(running[1][1], "WATCH_EVENT_TYPE_UPDATED", running[1][0])
        assert "CHECKPOINT_STATE_READY" in grpc_out.split("WATCH_EVENT_TYPE_UPDATED", 1)[1]
    finally:
        for process, _ in running:
            process.kill()
            process.wait(timeout=10)
