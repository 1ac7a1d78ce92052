"""Fixtures shared by this package's unit tests: the anyio backend for async tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio only (grpc.aio needs it)."""
    return "asyncio"
