"""The schemas the fuzz targets use: checkpoint.v1 as shipped, and the echo service's every-form
rules and every-type message, compiled once per process (the fuzzer runs outside pytest)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from rest_bridge.descriptor_set import Schema, default_descriptor_set, load_schema
from tests.transcoding.conftest import SERVICE, compile_protos

ECHO_PROTO = "testing/v1/echo.proto"


@functools.cache
def echo_schema() -> Schema:
    """testing.v1.EchoService (tests/transcoding/protos), compiled into a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="fuzz-echo-") as out:
        return load_schema(compile_protos(ECHO_PROTO, Path(out)), [SERVICE])


@functools.cache
def checkpoint_schema() -> Schema:
    return load_schema(default_descriptor_set())
