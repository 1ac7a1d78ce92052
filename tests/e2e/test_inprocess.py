"""`checkpoint-server serve --rest-listen`: the in-process REST door answers what the bridge does.

One server process serves gRPC and, with --rest-listen, REST from its own event loop; a separate
`checkpoint-rest-bridge` process fronts the same server's gRPC port. Every request below is sent
through both doors and the answers must be identical: status, body bytes and every header but
Date (the X-Request-Id is fixed so it is echoed the same). Rate-limit answers say how long to
wait, which moves with the clock, so only that number is masked.

The module starts its own processes (no shared fixtures), each bounded in time and stopped at
teardown.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import grpc
import httpx
import pytest
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc

from tests.e2e import Process, create_token, import_checkpoints
from tests.e2e.doors import serving_pair

BURST = 150
"""Calls each token may make (the rate refills ~nothing during the test)."""
REQUEST_ID = "inprocess-test"
EXAMPLE_ID = "0b6a4c2e-5d1f-4a3b-9c8d-7e6f5a4b3c21"
SEED = [
    {
        "id": EXAMPLE_ID,
        "display_name": "example",
        "resources": {"limits": {"memory_mib": 2048}, "requests": {"memory_mib": 1024, "vcpus": 2}},
        "state": "ready",
    },
    {
        "display_name": "my box",
        "resources": {"limits": {"memory_mib": 512}, "requests": {"memory_mib": 256, "vcpus": 1}},
        "state": "creating",
    },
]


@dataclass(frozen=True)
class Doors:
    inprocess: str
    bridge: str
    grpc_address: str
    read: str
    write: str
    limited: str
    server: Process


@pytest.fixture(scope="module")
def doors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Doors]:
    """One server with --rest-listen, and a separate bridge in front of its gRPC port."""
    work = tmp_path_factory.mktemp("inprocess")
    tokens = work / "tokens.json"
    read = create_token(tokens, "reader", ["checkpoints:read"])
    write = create_token(tokens, "writer", ["checkpoints:write"])
    limited = create_token(tokens, "limited", ["checkpoints:read"])
    database = f"sqlite:///{work / 'checkpoints.db'}"
    import_checkpoints(database, SEED, work / "seed.json")
    flags = ["--rate-limit", "0.001", "--rate-burst", str(BURST)]
    with serving_pair(work, database, tokens, server_flags=flags) as pair:
        yield Doors(
            inprocess=f"http://{pair.rest_address}",
            bridge=f"http://{pair.bridge_address}",
            grpc_address=pair.grpc_address,
            read=read,
            write=write,
            limited=limited,
            server=pair.server,
        )


Answer = tuple[int, bytes, dict[str, str]]


def _ask(base: str, method: str, path: str, headers: dict[str, str]) -> Answer:
    sent = {"X-Request-Id": REQUEST_ID, **headers}
    with httpx.Client(base_url=base, timeout=10.0) as client:
        reply = client.request(method, path, headers=sent)
    kept = {k.lower(): v for k, v in reply.headers.items() if k.lower() != "date"}
    return reply.status_code, reply.content, kept


def _both(doors: Doors, method: str, path: str, headers: dict[str, str]) -> tuple[Answer, Answer]:
    return _ask(doors.inprocess, method, path, headers), _ask(doors.bridge, method, path, headers)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


CASES: list[tuple[str, str, str, str, int]] = [
    # (name, method, path, who: read|write|none|bad|unknown|malformed, expected status)
    ("by name", "GET", "/v1/checkpoints/example", "read", 200),
    ("by id", "GET", f"/v1/checkpoints/{EXAMPLE_ID}", "read", 200),
    ("by id, upper case", "GET", f"/v1/checkpoints/{EXAMPLE_ID.upper()}", "read", 200),
    ("by percent-encoded name", "GET", "/v1/checkpoints/my%20box", "read", 200),
    ("no token", "GET", "/v1/checkpoints/example", "none", 401),
    ("unknown token", "GET", "/v1/checkpoints/example", "unknown", 401),
    ("malformed header", "GET", "/v1/checkpoints/example", "malformed", 401),
    ("missing scope", "GET", "/v1/checkpoints/example", "write", 403),
    ("not found by name", "GET", "/v1/checkpoints/nothing-here", "read", 404),
    ("not found by id", "GET", "/v1/checkpoints/00000000-0000-4000-8000-000000000000", "read", 404),
    ("slash in name", "GET", "/v1/checkpoints/a%2Fb", "read", 422),
    ("over-long name", "GET", "/v1/checkpoints/" + "n" * 129, "read", 422),
    ("control character", "GET", "/v1/checkpoints/" + quote("a\tb"), "read", 422),
    ("unknown query parameter", "GET", "/v1/checkpoints/example?colour=red", "read", 422),
    ("unknown path", "GET", "/v2/nothing", "read", 404),
    ("wrong method", "PUT", "/v1/checkpoints/example", "read", 405),
    ("readiness", "GET", "/readyz", "none", 200),
]


def _headers(doors: Doors, who: str) -> dict[str, str]:
    return {
        "read": _bearer(doors.read),
        "write": _bearer(doors.write),
        "none": {},
        "unknown": _bearer("ckpt_not-a-real-token"),
        "malformed": {"Authorization": "Basic dXNlcjpwYXNz"},
    }[who]


@pytest.mark.parametrize(
    ("method", "path", "who", "status"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_the_same_answer_through_both_doors(
    doors: Doors, method: str, path: str, who: str, status: int
) -> None:
    inprocess, bridge = _both(doors, method, path, _headers(doors, who))
    assert inprocess[0] == status, inprocess
    assert inprocess == bridge


def test_a_deadline_already_passed_is_504_through_both_doors(doors: Doors) -> None:
    """Grpc-Timeout: 0n. In-process it is always 504; a network call races its own deadline
    (grpcio delivers an answer that beats its timer), so the bridge is asked until it loses."""
    headers = {**_bearer(doors.read), "Grpc-Timeout": "0n"}
    inprocess = _ask(doors.inprocess, "GET", "/v1/checkpoints/example", headers)
    assert inprocess[0] == 504, inprocess
    for _ in range(20):
        bridge = _ask(doors.bridge, "GET", "/v1/checkpoints/example", headers)
        if bridge[0] != 200:
            break
    assert inprocess == bridge


def test_an_invalid_grpc_timeout_is_422_through_both_doors(doors: Doors) -> None:
    headers = {**_bearer(doors.read), "Grpc-Timeout": "soon"}
    inprocess, bridge = _both(doors, "GET", "/v1/checkpoints/example", headers)
    assert inprocess[0] == 422, inprocess
    assert inprocess == bridge


def test_rate_limit_is_shared_and_answers_429_alike(doors: Doors) -> None:
    """The bucket is the server's, whichever door a call comes through: spend it over gRPC."""
    with grpc.insecure_channel(doors.grpc_address) as channel:
        stub = svc_grpc.CheckpointServiceStub(channel)
        metadata = (("authorization", f"Bearer {doors.limited}"),)
        codes = []
        for _ in range(BURST + 5):
            try:
                stub.GetCheckpoint(
                    svc.GetCheckpointRequest(checkpoint_id="example"), metadata=metadata, timeout=5
                )
            except grpc.RpcError as exc:
                codes.append(exc.code())
                break
    assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED]
    inprocess, bridge = _both(doors, "GET", "/v1/checkpoints/example", _bearer(doors.limited))
    assert inprocess[0] == 429, inprocess
    assert bridge[0] == 429, bridge

    def masked(answer: Answer) -> tuple[int, bytes, dict[str, str]]:
        status, body, headers = answer
        wait = int(headers.pop("retry-after"))
        assert wait >= 1
        return status, re.sub(rb"retry in [0-9.]+ s", b"retry in N s", body), headers

    assert masked(inprocess) == masked(bridge)


def test_sigterm_stops_both_doors(doors: Doors) -> None:
    """Last (module order): the server drains and exits 0 with the in-process REST door open."""
    assert doors.server.popen.poll() is None
    assert doors.server.stop() == 0, doors.server.output()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{doors.inprocess}/healthz", timeout=2.0)
