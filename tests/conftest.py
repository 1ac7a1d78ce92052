"""Shared fixtures: the real gRPC server and REST bridge processes, started once per session.

Only tests that ask for them start anything. The server runs on a temporary SQLite database
seeded with `checkpoint-server import` and a tokens file made with `checkpoint-server token
create` (a read-only, a write-only and a read-write token); rate limiting is off so tests cannot
trip over one another. Every process is stopped at teardown (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest

from tests.e2e import (
    READ_SCOPE,
    SEED,
    WRITE_SCOPE,
    Bridge,
    GrpcServer,
    Tokens,
    create_token,
    http_client,
    import_checkpoints,
    start_bridge,
    start_server,
)
from tests.e2e.doors import Doors, open_doors


@dataclass(frozen=True)
class _Prepared:
    tokens: Tokens
    database: str


def _make_tokens(path: Path) -> Tokens:
    # One after another: each command rewrites the tokens file.
    read = create_token(path, "e2e-read", [READ_SCOPE])
    write = create_token(path, "e2e-write", [WRITE_SCOPE])
    both = create_token(path, "e2e-both", [READ_SCOPE, WRITE_SCOPE])
    return Tokens(path=path, read=read, write=write, both=both)


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for the session's databases, tokens file and process logs."""
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def _e2e_prepared(e2e_dir: Path) -> _Prepared:
    """The tokens file and the seeded database, made at the same time (both are CLI runs)."""
    database = f"sqlite:///{e2e_dir / 'checkpoints.db'}"
    with ThreadPoolExecutor(max_workers=2) as pool:
        tokens = pool.submit(_make_tokens, e2e_dir / "tokens.json")
        seeded = pool.submit(import_checkpoints, database, SEED, e2e_dir / "seed.json")
        seeded.result()
        return _Prepared(tokens=tokens.result(), database=database)


@pytest.fixture(scope="session")
def e2e_tokens(_e2e_prepared: _Prepared) -> Tokens:
    """A tokens file holding a read-only, a write-only and a read-write token."""
    return _e2e_prepared.tokens


@pytest.fixture(scope="session")
def e2e_database(_e2e_prepared: _Prepared) -> str:
    """A SQLite database URL seeded with tests.e2e.SEED by `checkpoint-server import`."""
    return _e2e_prepared.database


@pytest.fixture(scope="session")
def grpc_server(e2e_dir: Path, e2e_tokens: Tokens, e2e_database: str) -> Iterator[GrpcServer]:
    """`checkpoint-server serve` on the seeded database, without rate limits."""
    server = start_server(
        "server", e2e_dir, e2e_database, e2e_tokens.path, extra=["--rate-limit", "0"]
    )
    yield server
    server.process.stop()


BRIDGE_MODES = {"descriptor-set": [], "reflect": ["--reflect"]}
REFLECT_MODULES = frozenset(
    f"tests.e2e.{name}"
    for name in ("test_get_checkpoint", "test_routing", "test_grpc", "test_upstream_failures")
)
"""The contract's REST cases, run unchanged through a bridge with --reflect as well."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The modules of REFLECT_MODULES run once per BRIDGE_MODES entry."""
    if "bridge" in metafunc.fixturenames and metafunc.module.__name__ in REFLECT_MODULES:
        metafunc.parametrize("bridge", sorted(BRIDGE_MODES), indirect=True, scope="session")


def _bridge(name: str, e2e_dir: Path, grpc_server: GrpcServer) -> Iterator[Bridge]:
    started = start_bridge(f"bridge-{name}", e2e_dir, grpc_server.address, BRIDGE_MODES[name])
    yield started
    started.process.stop()


@pytest.fixture(scope="session")
def descriptor_set_bridge(e2e_dir: Path, grpc_server: GrpcServer) -> Iterator[Bridge]:
    """`checkpoint-rest-bridge` in front of grpc_server with the shipped descriptor set."""
    yield from _bridge("descriptor-set", e2e_dir, grpc_server)


@pytest.fixture(scope="session")
def reflect_bridge(e2e_dir: Path, grpc_server: GrpcServer) -> Iterator[Bridge]:
    """`checkpoint-rest-bridge --reflect` in front of grpc_server: routes from its reflection."""
    yield from _bridge("reflect", e2e_dir, grpc_server)


@pytest.fixture(scope="session")
def bridge(request: pytest.FixtureRequest) -> Bridge:
    """A bridge in front of grpc_server, ready (its /readyz answered 200): the descriptor-set
    one, or in REFLECT_MODULES each mode in turn (both processes live for the session)."""
    mode = getattr(request, "param", "descriptor-set")
    started: Bridge = request.getfixturevalue(f"{mode.replace('-', '_')}_bridge")
    return started


@pytest.fixture(scope="session")
def http(bridge: Bridge) -> Iterator[httpx.Client]:
    """An HTTP client for bridge that checks the envelope of every response."""
    with http_client(bridge.base_url) as client:
        yield client


@pytest.fixture(scope="session")
def grpc_channel(grpc_server: GrpcServer) -> Iterator[grpc.Channel]:
    """A plaintext gRPC channel to grpc_server."""
    with grpc.insecure_channel(grpc_server.address) as channel:
        yield channel


@pytest.fixture(scope="session")
def rest_doors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Doors]:
    """A server with gRPC and in-process REST, and a bridge in front of it (e2e.doors)."""
    with open_doors(tmp_path_factory.mktemp("doors")) as started:
        yield started
