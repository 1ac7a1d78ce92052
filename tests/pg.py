"""PostgreSQL for tests: a pytest plugin (loaded by `-p tests.pg` in pyproject.toml's addopts).

Fixtures:

- `postgres_url` (session): the server tests may create databases on. It is
  CHECKPOINT_TEST_POSTGRES_URL when that is set (a postgresql:// URL of a role allowed to
  CREATE DATABASE); otherwise a throwaway server this plugin starts: initdb into a temporary
  directory, `postgres` on a free 127.0.0.1 port with fsync off, stopped and deleted at the end of
  the session. The machine's own PostgreSQL service is never used. As root, initdb and postgres
  (which refuse to run as root) run as the `postgres` OS user.
- `postgres_database_url` (function): a fresh, empty database on that server for one test,
  dropped (connections and all) afterwards.

When the server binaries (initdb, postgres) are missing, the tests that need them fail with the
command that installs them when CI=true, and are skipped with that command as the reason otherwise.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from tests.throwaway import free_port, missing, read_log, stop_process

URL_VARIABLE = "CHECKPOINT_TEST_POSTGRES_URL"
_INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, postgres) not found in `pg_config --bindir`, "
    "/usr/lib/postgresql/*/bin or PATH: run `bash scripts/ensure_test_services.sh` "
    "(apt-get install postgresql), or set "
    f"{URL_VARIABLE}=postgresql://USER@HOST:PORT/DB to use a running server"
)
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 30.0


def find_postgres_bindir() -> Path | None:
    """The directory holding initdb and postgres: pg_config's, Debian's newest, or PATH's."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0 and result.stdout.strip():
            candidates.append(Path(result.stdout.strip()))
    debian = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(debian, key=lambda p: _version_key(p.parent.name), reverse=True)
    initdb = shutil.which("initdb")
    if initdb is not None:
        candidates.append(Path(initdb).resolve().parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    return None


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


class ThrowawayPostgres:
    """A private PostgreSQL server in a temporary directory, owned by whoever may run it."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.base = Path(tempfile.mkdtemp(prefix="checkpoint-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        # PostgreSQL refuses to run as root: then it runs as the postgres OS user (set by
        # Popen in the child), which owns the directory. None means "as we are".
        self._uid: int | None = None
        self._gid: int | None = None
        self._groups: list[int] | None = None
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.base, ignore_errors=True)
                raise RuntimeError(
                    "running as root, and there is no `postgres` OS user to run PostgreSQL as "
                    "(apt-get install postgresql creates it)"
                ) from None
            self._uid, self._gid, self._groups = user.pw_uid, user.pw_gid, []
            os.chown(self.base, user.pw_uid, user.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """initdb, then start postgres on a free port (a few tries) and wait until it answers."""
        initdb = subprocess.run(
            [
                str(self.bindir / "initdb"),
                "--pgdata",
                str(self.data),
                "--username",
                "postgres",
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            cwd=self.base,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
            user=self._uid,
            group=self._gid,
            extra_groups=self._groups,
        )
        if initdb.returncode != 0:
            output = initdb.stdout.decode(errors="replace")
            raise RuntimeError(f"initdb failed ({initdb.returncode}):\n{output}")
        for _ in range(3):
            if self._try_start():
                return
        raise RuntimeError(f"PostgreSQL did not start; its log:\n{self._log_text()}")

    def restart(self) -> None:
        """Start the stopped server again, on the same port, and wait until it answers."""
        if not self._try_start(self.port):
            raise RuntimeError(f"PostgreSQL did not restart; its log:\n{self._log_text()}")

    def _try_start(self, port: int = 0) -> bool:
        self.port = port or free_port()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(self.data),
                    "-k",
                    str(self.base),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                ],
                cwd=self.base,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self._uid,
                group=self._gid,
                extra_groups=self._groups,
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # most likely the port was taken meanwhile: try another
            try:
                with psycopg.connect(self.url, connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"PostgreSQL did not accept connections within {_START_TIMEOUT:.0f} s; its log:\n"
            f"{self._log_text()}"
        )

    def _log_text(self) -> str:
        return read_log(self.log)

    def stop(self) -> None:
        """Fast shutdown (SIGINT), SIGKILL if that hangs."""
        stop_process(self.process, signal.SIGINT, _STOP_TIMEOUT)

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


def missing_binaries() -> NoReturn:
    """Fail (in CI) or skip (elsewhere) with the install command: there is no PostgreSQL."""
    missing(_INSTALL_HINT)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server URL: CHECKPOINT_TEST_POSTGRES_URL, or a throwaway server's."""
    given = os.environ.get(URL_VARIABLE)
    if given:
        yield given
        return
    bindir = find_postgres_bindir()
    if bindir is None:
        missing_binaries()
    server = ThrowawayPostgres(bindir)
    try:
        server.start()
        yield server.url
    finally:
        server.stop()
        server.remove()


def database_url(server_url: str, name: str) -> str:
    """server_url with its database replaced by name."""
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


@pytest.fixture
def postgres_database_url(postgres_url: str) -> Iterator[str]:
    """The URL of a fresh, empty database for this test alone; dropped after it."""
    name = f"checkpoint_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield database_url(postgres_url, name)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
