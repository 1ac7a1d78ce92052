"""The README's HTTP examples (HEAD, ETags, preconditions, gzip, `$alt`, CORS) work as pasted
against `make run` (scripts/run_demo.py, started as the README says, with a CORS origin).

The block runs as one bash script, ports aside; every `# -> NNN` comment must be the status of
the matching answer, in order, and the script must succeed.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import REPO
from tests.e2e.test_demo import Demo, run_demo

SECTION = "### HTTP: HEAD, ETags and preconditions, compression, CORS, `$alt`"
_STATUS_LINE = re.compile(r"HTTP/1\.1 (\d{3}) ")
_EXPECTED = re.compile(r"# -> (\d{3})$", re.MULTILINE)


def readme_block() -> str:
    """The sh block of the README's HTTP section."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split(SECTION, 1)[1].split("\n### ", 1)[0]
    blocks: list[str] = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 1, blocks
    return blocks[0]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`make run`'s script, started with the README's CHECKPOINT_REST_CORS_ORIGINS."""
    work = tmp_path_factory.mktemp("readme-http")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHECKPOINT_REST_CORS_ORIGINS", "http://localhost:3000")
        started = run_demo(work / "run", work, "demo-http")
    yield started
    started.process.stop()


def _run(block: str, demo: Demo, cwd: Path) -> str:
    script = block.replace("127.0.0.1:8080", demo.rest)
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env={**os.environ, "TOKEN": demo.token},
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout


def test_readme_http_examples_answer_the_statuses_they_show(demo: Demo, tmp_path: Path) -> None:
    """Each annotated example answers its status; HEAD, 304 and gzip show what they claim."""
    block = readme_block()
    expected = _EXPECTED.findall(block)
    assert len(expected) >= 10
    output = _run(block, demo, tmp_path)
    assert _STATUS_LINE.findall(output) == expected, output
    assert re.search(r'^etag: "v\d+"\r?$', output, re.MULTILINE | re.IGNORECASE), output
    assert '"state":2' in output
    assert "access-control-allow-methods: DELETE, GET, HEAD, PATCH\n" in output
    sizes = dict(re.findall(r"(identity|gzip): (\d+) bytes$", output, re.MULTILINE))
    assert int(sizes["gzip"]) < int(sizes["identity"]), output


def test_readme_http_examples_can_be_pasted_twice(demo: Demo, tmp_path: Path) -> None:
    """The examples clean up after themselves, so running them again answers the same."""
    block = readme_block()
    assert _STATUS_LINE.findall(_run(block, demo, tmp_path)) == _EXPECTED.findall(block)
