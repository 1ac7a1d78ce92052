"""CORS in a real browser: headless Chromium loads a page from another origin that calls the API.

Two tiny page servers on their own 127.0.0.1 ports are two origins; both REST doors allow only
the first. The page fetches a checkpoint from each door with a bearer token (so the browser
sends a preflight first), reads the exposed ETag header and writes what it got into the DOM,
which Chromium dumps (--dump-dom) once the page's work is done. From the allowed origin both
fetches succeed; from the other one the browser blocks both.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e.doors import Doors, open_doors

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_TIMEOUT = 60.0
SEED = [
    {
        "display_name": "browser-seen",
        "resources": {"limits": {"memory_mib": 64}, "requests": {"memory_mib": 32, "vcpus": 1}},
        "state": "ready",
    }
]
PAGE = """<!doctype html>
<html><head><title>pending</title></head><body><pre id="out">pending</pre><script>
const DOORS = %(doors)s;
const TOKEN = %(token)s;
(async () => {
  const lines = [];
  for (const base of DOORS) {
    try {
      const reply = await fetch(base + "/v1/checkpoints/browser-seen",
                                {headers: {"Authorization": "Bearer " + TOKEN}});
      const body = await reply.json();
      lines.push("ok " + reply.status + " " + reply.headers.get("ETag") + " " +
                 body.data.display_name);
    } catch (error) {
      lines.push("blocked " + error.name);
    }
  }
  document.getElementById("out").textContent = lines.join("|");
  document.title = "done";
})();
</script></body></html>
"""


class _Pages:
    """A page server on a free port: its origin, and the page it serves at /."""

    def __init__(self) -> None:
        self.page = b""
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(pages.page)))
                self.end_headers()
                self.wfile.write(pages.page)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Doors, _Pages, _Pages]]:
    """Both doors allowing only the first page server's origin, and both page servers."""
    allowed, other = _Pages(), _Pages()
    try:
        work = tmp_path_factory.mktemp("cors-browser")
        with open_doors(work, SEED, [allowed.origin]) as doors:
            urls = json.dumps(list(doors.urls.values()))
            page = PAGE % {"doors": urls, "token": json.dumps(doors.reader)}
            allowed.page = other.page = page.encode()
            yield doors, allowed, other
    finally:
        allowed.close()
        other.close()


def _dump_dom(url: str, profile: Path) -> str:
    """The DOM of url after its scripts ran, as headless Chromium prints it."""
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _result(dom: str) -> list[str]:
    assert "<title>done</title>" in dom, dom[-2000:]
    start = dom.index('<pre id="out">') + len('<pre id="out">')
    return dom[start : dom.index("</pre>", start)].split("|")


def test_a_page_on_an_allowed_origin_reads_a_checkpoint_through_both_doors(
    setup: tuple[Doors, _Pages, _Pages], tmp_path: Path
) -> None:
    """The preflight passes, the call answers, and the page can read the exposed ETag."""
    _, allowed, _ = setup
    lines = _result(_dump_dom(allowed.origin + "/", tmp_path / "profile"))
    assert lines == ['ok 200 "v1" browser-seen', 'ok 200 "v1" browser-seen']


def test_a_page_on_another_origin_is_blocked_by_the_browser(
    setup: tuple[Doors, _Pages, _Pages], tmp_path: Path
) -> None:
    """Without CORS headers for its origin the browser refuses both fetches (TypeError)."""
    _, _, other = setup
    lines = _result(_dump_dom(other.origin + "/", tmp_path / "profile"))
    assert lines == ["blocked TypeError", "blocked TypeError"]
