"""Redis for tests: a pytest plugin (loaded by `-p tests.redis` in pyproject.toml's addopts).

Fixtures:

- `redis_url` (session): the Redis the tests use. It is CHECKPOINT_TEST_REDIS_URL when that is
  set (a redis:// URL); otherwise a throwaway `redis-server` this plugin starts on a free
  127.0.0.1 port with persistence off (`--save '' --appendonly no`), in a temporary directory,
  stopped and deleted at the end of the session. The machine's own Redis is never used.
- `redis_key_prefix` (function): a key prefix no other test (or test run) uses, so tests sharing
  one Redis are independent; every key under it is deleted after the test.
- `redis_server_binary` (session): the path of `redis-server`, for tests that start and stop a
  Redis of their own (`ThrowawayRedis`) to see what happens when it goes away.

When `redis-server` is missing, the tests that need it fail with the command that installs it when
CI=true, and are skipped with that command as the reason otherwise.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import redis

from tests.throwaway import free_port, missing, read_log, stop_process

URL_VARIABLE = "CHECKPOINT_TEST_REDIS_URL"
_INSTALL_HINT = (
    "redis-server not found on PATH: run `bash scripts/ensure_test_services.sh` "
    "(apt-get install redis-server), or set "
    f"{URL_VARIABLE}=redis://HOST:PORT/DB to use a running server"
)
_START_TIMEOUT = 20.0
_STOP_TIMEOUT = 10.0
_CLEANUP_BATCH = 500


class ThrowawayRedis:
    """A private redis-server on 127.0.0.1, without persistence, in a temporary directory."""

    def __init__(self, binary: str, port: int = 0) -> None:
        self.binary = binary
        self.base = Path(tempfile.mkdtemp(prefix="checkpoint-redis-"))
        self.log = self.base / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start on self.port (a free one when 0, a few tries) and wait until it answers PING.

        Raises:
            RuntimeError: it did not start; the message holds its log.
        """
        fixed = self.port != 0
        for _ in range(1 if fixed else 3):
            if self._try_start(self.port if fixed else free_port()):
                return
        raise RuntimeError(f"redis-server did not start; its log:\n{self._log_text()}")

    def _try_start(self, port: int) -> bool:
        self.port = port
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.base),
                    "--daemonize",
                    "no",
                ],
                cwd=self.base,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # most likely the port was taken meanwhile
            try:
                with redis.Redis.from_url(self.url, socket_timeout=1.0) as client:
                    if client.ping():
                        return True
            except redis.ConnectionError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(
            f"redis-server did not answer within {_START_TIMEOUT:.0f} s; its log:\n"
            f"{self._log_text()}"
        )

    def _log_text(self) -> str:
        return read_log(self.log)

    def stop(self) -> None:
        """SIGTERM (no save: persistence is off), SIGKILL if that hangs."""
        stop_process(self.process, signal.SIGTERM, _STOP_TIMEOUT)

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


def _missing_binary() -> NoReturn:
    missing(_INSTALL_HINT)


@pytest.fixture(scope="session")
def redis_server_binary() -> str:
    """The redis-server executable (fails in CI, skips elsewhere, when it is missing)."""
    binary = shutil.which("redis-server")
    if binary is None:
        _missing_binary()
    return binary


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis URL: CHECKPOINT_TEST_REDIS_URL, or a throwaway server's."""
    given = os.environ.get(URL_VARIABLE)
    if given:
        yield given
        return
    binary = shutil.which("redis-server")
    if binary is None:
        _missing_binary()
    server = ThrowawayRedis(binary)
    try:
        server.start()
        yield server.url
    finally:
        server.stop()
        server.remove()


@pytest.fixture
def redis_key_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test alone; its keys are deleted after the test."""
    prefix = f"checkpoint-test:{uuid.uuid4().hex}:"
    yield prefix
    with redis.Redis.from_url(redis_url, socket_timeout=5.0) as client:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=_CLEANUP_BATCH):
            batch.append(key)
            if len(batch) >= _CLEANUP_BATCH:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)
