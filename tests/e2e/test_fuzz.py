"""Schemathesis against the live bridge's own /openapi.json: no 5xx, every answer in the schema.

A bounded run (a fixed number of examples per operation) on a server of its own, so the
generated creates, updates and deletes cannot disturb the shared session's data.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e import (
    READ_SCOPE,
    WRITE_SCOPE,
    Bridge,
    create_token,
    import_checkpoints,
    start_bridge,
    start_server,
)

FUZZ_SEED: list[dict[str, Any]] = [
    {
        "id": "0b7f6a1e-2c3d-4e5f-8a9b-0c1d2e3f4a5b",
        "display_name": "fuzz-target",
        "resources": {"limits": {"memory_mib": 64}, "requests": {"memory_mib": 32, "vcpus": 1}},
        "state": "ready",
    }
]
EXAMPLES_PER_OPERATION = 40


class _Target:
    def __init__(self, bridge: Bridge, token: str) -> None:
        self.bridge, self.token = bridge, token


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Target]:
    """A server and bridge of their own, with a read-write token and one checkpoint."""
    work: Path = tmp_path_factory.mktemp("fuzz")
    database = f"sqlite:///{work / 'fuzz.db'}"
    import_checkpoints(database, FUZZ_SEED, work / "seed.json")
    token = create_token(work / "tokens.json", "fuzz", [READ_SCOPE, WRITE_SCOPE])
    server = start_server(
        "fuzz-server", work, database, work / "tokens.json", ["--rate-limit", "0"]
    )
    try:
        bridge = start_bridge("fuzz-bridge", work, server.address)
        try:
            yield _Target(bridge, token)
        finally:
            bridge.process.stop()
    finally:
        server.process.stop()


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_target: _Target) -> Any:
    """The bridge's OpenAPI document, loaded by schemathesis from the live endpoint."""
    return schemathesis.openapi.from_url(f"{fuzz_target.bridge.base_url}/openapi.json")


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def test_generated_requests_get_documented_answers(fuzz_schema: Any, fuzz_target: _Target) -> None:
    """Generated requests never get a 5xx, and every answer matches the documented schema."""
    headers = {"Authorization": f"Bearer {fuzz_target.token}"}
    seen: Counter[int] = Counter()
    operations = [result.ok() for result in fuzz_schema.get_all_operations()]
    assert len(operations) >= 11  # the five RPCs' routes, /healthz, /readyz, a HEAD per GET
    for operation in operations:
        # A HEAD's 200 has no content (issue 13); a watch's is a stream (issue 14).
        if STREAM in operation.definition.raw["responses"]["200"].get("content", {}):
            _fuzz_stream(operation, headers, seen)
            continue

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = case.call(headers=headers)
            seen[response.status_code] += 1
            case.validate_response(response, checks=CHECKS)
            if case.method.upper() == "HEAD" or response.status_code == 304:
                assert response.content == b""  # the documented bodiless answers
            else:
                assert set(response.json()) in ({"data"}, {"error"}), response.text

        check()
    # The run reached the service: successes and validation failures both occurred.
    assert seen[200] > 0, seen
    assert seen[422] > 0, seen
    assert not any(status >= 500 for status in seen), seen


STREAM = "application/x-ndjson"
STREAM_EXAMPLES = 15


def _fuzz_stream(operation: Any, headers: dict[str, str], seen: Counter[int]) -> None:
    """A streaming operation, each call bounded by Grpc-Timeout: no 5xx, the documented status
    codes, and every item (an NDJSON line or an SSE event's data) is a data or error envelope."""

    @settings(
        max_examples=STREAM_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        response = case.call(headers={**headers, "Grpc-Timeout": "100m"})
        seen[response.status_code] += 1
        case.validate_response(response, checks=[not_a_server_error, status_code_conformance])
        kind = "".join(response.headers.get("content-type", []))  # a list of values
        if kind.startswith("text/event-stream"):
            items = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        elif kind.startswith(STREAM):
            items = response.text.splitlines()
        else:
            items = [response.text]
        assert items, response.text
        for item in items:
            assert set(json.loads(item)) in ({"data"}, {"error"}), item

    check()


def test_fuzzing_left_the_service_answering(fuzz_target: _Target) -> None:
    """After the fuzz run the service is still ready and serves reads."""
    base = fuzz_target.bridge.base_url
    assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
    listed = httpx.get(
        f"{base}/v1/checkpoints",
        headers={"Authorization": f"Bearer {fuzz_target.token}"},
        timeout=5,
    )
    assert listed.status_code == 200
    assert "checkpoints" in listed.json()["data"]
