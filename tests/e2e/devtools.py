"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol, for page tests.

One browser per page, with a fresh profile, no network but 127.0.0.1 in practice (tests only
load local pages), and every wait bounded in time.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.throwaway import missing

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    "--remote-debugging-port=0",
]
START_TIMEOUT = 20.0
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


class Page:
    """One page target: evaluate JavaScript in it, wait for a condition."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._ids = itertools.count(1)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command and its result (events in between are skipped)."""
        number = next(self._ids)
        self._socket.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=START_TIMEOUT))
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited); page errors raise."""
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}...: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = START_TIMEOUT) -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""
        return wait_until(lambda: self.evaluate(expression), timeout, expression)

    def goto(self, url: str) -> None:
        """Navigate and wait for the load event's readiness."""
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")


def wait_until(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    """probe() once it is truthy, polled every 0.1 s; AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout:g} s: {what}")
        time.sleep(0.1)


class Browser:
    """A running headless Chromium; each page is a new target with its own socket."""

    def __init__(self, url: str) -> None:
        self.url = url

    @contextmanager
    def page(self) -> Iterator[Page]:
        """A new blank page, closed on exit."""
        with connect(self.url, max_size=None, open_timeout=START_TIMEOUT) as socket:
            root = Page(socket)
            target = root.send("Target.createTarget", url="about:blank")["targetId"]
            page_url = self.url.split("/devtools/")[0] + f"/devtools/page/{target}"
            try:
                with connect(page_url, max_size=None, open_timeout=START_TIMEOUT) as page_socket:
                    page = Page(page_socket)
                    page.send("Page.enable")
                    yield page
            finally:
                root.send("Target.closeTarget", targetId=target)


@contextmanager
def chromium(profile: Path) -> Iterator[Browser]:
    """A new headless Chromium with its profile in profile; stopped on exit."""
    if shutil.which(CHROMIUM) is None:
        missing(f"{CHROMIUM} is missing: run scripts/ensure_test_services.sh")
    profile.mkdir(parents=True, exist_ok=True)
    log = profile / "chromium.err"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield Browser(
            wait_until(lambda: _listening(log), START_TIMEOUT, "Chromium prints its address")
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _listening(log: Path) -> str | None:
    found = _LISTENING.search(log.read_text(errors="replace"))
    return None if found is None else found.group(1)
