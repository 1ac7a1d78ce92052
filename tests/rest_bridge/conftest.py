"""Fixtures shared by this package's unit tests: the anyio backend for async tests, the
in-process upstream and bridge of tests.rest_bridge.upstream, and the root logger restored."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.rest_bridge.upstream import Bridge, Upstream, open_bridge, start_upstream


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio only (grpc.aio needs it)."""
    return "asyncio"


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """A grpc.aio server on 127.0.0.1:0 with a stand-in CheckpointService and health, SERVING."""
    async with start_upstream() as started:
        yield started


@pytest.fixture
async def asgi_bridge(upstream: Upstream) -> AsyncIterator[Bridge]:
    """The bridge app (default configuration) over a channel to upstream, called in-process.

    Named apart from tests/conftest.py's `bridge`, the subprocess bridge of the e2e suite."""
    async with open_bridge(upstream.address) as opened:
        yield opened


@pytest.fixture
def restore_root() -> Iterator[None]:
    """The root logger's handlers and level as they were, after the test (set-up replaces them)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)
