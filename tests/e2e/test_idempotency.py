"""Idempotency-Key on REST creates and request_id over gRPC, against the real processes.

Every REST case runs on both doors (the separate bridge and `serve --rest-listen`); the keys
live in the server's store, so both doors (and gRPC) see the same keys.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import httpx
import pytest
from checkpoint.v1 import checkpoint_pb2 as pb
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc

from tests.e2e import bearer
from tests.e2e.doors import Doors

DOORS = ["bridge", "inprocess"]
RESOURCES = {"limits": {"memory_mib": 2048}, "requests": {"memory_mib": 1024, "vcpus": 2}}


@pytest.fixture(scope="module")
def doors(rest_doors: Doors) -> Doors:
    """Both REST doors on one server."""
    return rest_doors


def post(
    base: str, token: str, body: dict[str, Any], key: str | bytes | None, **params: str
) -> httpx.Response:
    """POST /v1/checkpoints with an optional Idempotency-Key."""
    headers = {k.encode(): v.encode() for k, v in bearer(token).items()}
    if key is not None:
        headers[b"Idempotency-Key"] = key if isinstance(key, bytes) else key.encode()
    return httpx.post(
        f"{base}/v1/checkpoints", json=body, headers=headers, params=params, timeout=10.0
    )


def body_named(name: str) -> dict[str, Any]:
    """A valid create body."""
    return {"display_name": name, "resources": RESOURCES}


def unique(prefix: str) -> str:
    """A display name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("door", DOORS)
def test_a_retry_replays_the_original_answer(doors: Doors, door: str) -> None:
    """The same key and body answer the first create's status and body, marked as replayed,
    even after the checkpoint changed; nothing new is created."""
    base, key, name = doors.urls[door], f"retry-{uuid.uuid4()}-x", unique("retry")
    first = post(base, doors.writer, body_named(name), key)
    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers
    created = first.json()["data"]
    changed = httpx.patch(
        f"{base}/v1/checkpoints/{created['id']}",
        json={"state": "ready"},
        headers=bearer(doors.writer),
        timeout=10.0,
    )
    assert changed.status_code == 200, changed.text
    again = post(base, doors.writer, body_named(name), key)
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    fresh = post(base, doors.writer, body_named(name), None)
    assert fresh.status_code == 409  # the name is taken: the replay created nothing new


@pytest.mark.parametrize("door", DOORS)
def test_the_same_key_with_another_body_is_422(doors: Doors, door: str) -> None:
    """Reusing a key for a different request is refused, naming request_id."""
    base, key = doors.urls[door], f"reuse-{uuid.uuid4()}"
    assert post(base, doors.writer, body_named(unique("reuse")), key).status_code == 200
    refused = post(base, doors.writer, body_named(unique("reuse")), key)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "invalid_argument"
    assert error["details"][0]["field"] == "request_id"


@pytest.mark.parametrize("door", DOORS)
def test_keys_of_two_tokens_never_collide(doors: Doors, door: str) -> None:
    """Another client's identical key is its own: its create runs, it is not a 422 or replay."""
    base, key = doors.urls[door], f"shared-{uuid.uuid4()}"
    assert post(base, doors.writer, body_named(unique("mine")), key).status_code == 200
    theirs = post(base, doors.other, body_named(unique("theirs")), key)
    assert theirs.status_code == 200, theirs.text
    assert "idempotent-replayed" not in theirs.headers


@pytest.mark.parametrize("door", DOORS)
def test_a_quoted_key_is_the_same_key(doors: Doors, door: str) -> None:
    """The draft's structured-field form "abc" names the same key as the bare abc."""
    base, raw, name = doors.urls[door], f"quoted-{uuid.uuid4()}", unique("quoted")
    assert post(base, doors.writer, body_named(name), raw).status_code == 200
    again = post(base, doors.writer, body_named(name), f'"{raw}"')
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize(
    "key", ["", "k" * 256, "cl\u00e9".encode(), '"unterminated', '"bad\\escape"']
)
def test_an_invalid_key_is_422_naming_the_header(doors: Doors, door: str, key: str | bytes) -> None:
    """Empty, over 255 characters, not ASCII or broken quoting: 422 on the Idempotency-Key."""
    refused = post(doors.urls[door], doors.writer, body_named(unique("badkey")), key)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["details"][0]["field"] == "Idempotency-Key"
    assert "Idempotency-Key must be" in error["message"]


@pytest.mark.parametrize("door", DOORS)
def test_the_header_and_a_different_request_id_query_is_422(doors: Doors, door: str) -> None:
    """The key and an explicit request_id that disagree are refused rather than guessed."""
    refused = post(
        doors.urls[door],
        doors.writer,
        body_named(unique("both")),
        "header-key",
        request_id=str(uuid.uuid4()),
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["field"] == "Idempotency-Key"


@pytest.mark.parametrize("door", DOORS)
def test_the_header_is_ignored_where_no_request_id_exists(doors: Doors, door: str) -> None:
    """A PATCH carries no request_id, so even an invalid key there changes nothing."""
    base = doors.urls[door]
    created = post(base, doors.writer, body_named(unique("patched")), None).json()["data"]
    changed = httpx.patch(
        f"{base}/v1/checkpoints/{created['id']}",
        json={"state": "ready"},
        headers={**bearer(doors.writer), "Idempotency-Key": "k" * 300},
        timeout=10.0,
    )
    assert changed.status_code == 200, changed.text


def _mapped(key: str) -> str:
    """The request_id the bridge makes of a non-UUID key: its UUID5 in the bridge's namespace."""
    from rest_bridge.idempotency import request_id_of

    return request_id_of(key)


@pytest.mark.parametrize("door", DOORS)
def test_a_retry_while_the_first_runs_is_409_aborted(doors: Doors, door: str) -> None:
    """A key claimed by a call still running (here: as another replica would leave it in the
    shared store) answers 409 aborted, and creates nothing."""
    key, name = f"running-{uuid.uuid4()}", unique("running")
    request = svc.CreateCheckpointRequest(
        checkpoint=pb.Checkpoint(
            display_name=name,
            resources=pb.Resources(
                limits=pb.ResourceLimits(memory_mib=2048),
                requests=pb.ResourceRequests(memory_mib=1024, vcpus=2),
            ),
        )
    )
    fingerprint = hashlib.sha256(request.SerializeToString(deterministic=True)).digest()
    now_us = time.time_ns() // 1000
    with sqlite3.connect(doors.database) as conn:
        conn.execute(
            "INSERT INTO request_keys VALUES (?, ?, ?, NULL, ?, ?)",
            ("writer", _mapped(key), fingerprint, now_us, now_us + 86_400_000_000),
        )
    refused = post(doors.urls[door], doors.writer, body_named(name), key)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "aborted"
    assert "still in progress" in refused.json()["error"]["message"]
    missing = httpx.get(
        f"{doors.urls[door]}/v1/checkpoints/{name}", headers=bearer(doors.both), timeout=10.0
    )
    assert missing.status_code == 404


@pytest.mark.parametrize("door", DOORS)
def test_concurrent_retries_create_exactly_once(doors: Doors, door: str) -> None:
    """Six identical keyed creates at once: one runs, the others replay it or are told 409."""
    base, key, name = doors.urls[door], f"burst-{uuid.uuid4()}", unique("burst")
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(
            pool.map(lambda _: post(base, doors.writer, body_named(name), key), range(6))
        )
    fresh = [a for a in answers if a.status_code == 200 and "idempotent-replayed" not in a.headers]
    replays = [a for a in answers if a.headers.get("idempotent-replayed") == "true"]
    busy = [a for a in answers if a.status_code == 409]
    assert len(fresh) == 1
    assert len(replays) + len(busy) == 5
    assert all(r.content == fresh[0].content for r in replays)
    assert all(b.json()["error"]["code"] == "aborted" for b in busy)


def test_grpc_request_id_replays_with_trailing_metadata(doors: Doors) -> None:
    """Over gRPC a repeated request_id answers the original response, with the trailing
    metadata idempotent-replayed: true; a REST key of the same UUID is the same request."""
    request_id, name = str(uuid.uuid4()), unique("grpc")
    request = svc.CreateCheckpointRequest(
        request_id=request_id,
        checkpoint=pb.Checkpoint(
            display_name=name,
            resources=pb.Resources(
                limits=pb.ResourceLimits(memory_mib=2048),
                requests=pb.ResourceRequests(memory_mib=1024, vcpus=2),
            ),
        ),
    )
    metadata = (("authorization", f"Bearer {doors.writer}"),)
    with grpc.insecure_channel(doors.grpc_address) as channel:
        stub = svc_grpc.CheckpointServiceStub(channel)
        first, first_call = stub.CreateCheckpoint.with_call(request, metadata=metadata, timeout=10)
        again, again_call = stub.CreateCheckpoint.with_call(request, metadata=metadata, timeout=10)
    assert again == first
    assert ("idempotent-replayed", "true") not in tuple(first_call.trailing_metadata())
    assert ("idempotent-replayed", "true") in tuple(again_call.trailing_metadata())
    rest = post(doors.bridge, doors.writer, body_named(name), request_id.upper())
    assert rest.status_code == 200
    assert rest.headers["idempotent-replayed"] == "true"
    assert rest.json()["data"]["id"] == first.checkpoint.id


def test_grpc_request_id_must_be_a_uuid(doors: Doors) -> None:
    """AIP-155: a request_id that is not a UUID is INVALID_ARGUMENT naming the field."""
    request = svc.CreateCheckpointRequest(
        request_id="not-a-uuid",
        checkpoint=pb.Checkpoint(
            display_name=unique("nouuid"),
            resources=pb.Resources(
                limits=pb.ResourceLimits(memory_mib=2048),
                requests=pb.ResourceRequests(memory_mib=1024, vcpus=2),
            ),
        ),
    )
    with grpc.insecure_channel(doors.grpc_address) as channel:
        stub = svc_grpc.CheckpointServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.CreateCheckpoint(
                request, metadata=(("authorization", f"Bearer {doors.writer}"),), timeout=10
            )
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in (raised.value.details() or "")
