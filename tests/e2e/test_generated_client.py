"""A generated client as an oracle: the document and the behaviour cannot drift apart.

`openapi-python-client` generates a typed client from the LIVE /openapi.json of each REST door
(the separate bridge and `serve --rest-listen`) into a temporary directory, offline and without
its formatting hooks, and every operation is driven through it: the generated models must parse
each answer (required fields, enums, timestamps), and each documented error must come back as
the documented Error model with its status.
"""

from __future__ import annotations

import importlib
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.e2e import executable, run_command
from tests.e2e.doors import Doors

DOORS = ["bridge", "inprocess"]
_CONFIG = "post_hooks: []\n"


class Oracle:
    """The generated package of one door, and helpers to call it as a client would."""

    def __init__(self, package: str, base_url: str) -> None:
        self.package, self.base_url = package, base_url
        self.models = importlib.import_module(f"{package}.models")
        self.client_module = importlib.import_module(f"{package}.client")
        self._clients: list[Any] = []

    def api(self, name: str) -> ModuleType:
        """The generated module of one operation, e.g. checkpoint_service_get_checkpoint."""
        return importlib.import_module(f"{self.package}.api.checkpoint_service.{name}")

    def client(self, token: str | None) -> Any:
        """An AuthenticatedClient with token, or a plain Client without one (closed by close)."""
        if token is None:
            made = self.client_module.Client(base_url=self.base_url, timeout=10.0)
        else:
            made = self.client_module.AuthenticatedClient(
                base_url=self.base_url, token=token, timeout=10.0
            )
        self._clients.append(made)
        return made

    def close(self) -> None:
        """Close the connections of every client made."""
        for made in self._clients:
            made.get_httpx_client().close()
        self._clients.clear()

    def new_checkpoint(self, name: str, vcpus: int = 2) -> Any:
        """The generated input model of a create or update body."""
        m = self.models
        return m.CheckpointV1CheckpointInput(
            display_name=name,
            resources=m.CheckpointV1ResourcesInput(
                limits=m.CheckpointV1ResourceLimitsInput(memory_mib=2048),
                requests=m.CheckpointV1ResourceRequestsInput(memory_mib=1024, vcpus=vcpus),
            ),
        )


@pytest.fixture(scope="module")
def oracles(
    rest_doors: Doors, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Oracle]]:
    """A client generated from each door's live /openapi.json, importable for this module."""
    work = tmp_path_factory.mktemp("generated")
    config = work / "config.yaml"
    config.write_text(_CONFIG, encoding="utf-8")
    made: dict[str, Oracle] = {}
    sys.path.insert(0, str(work))
    try:
        for door, base in rest_doors.urls.items():
            package = f"oracle_{door}"
            run_command(
                [
                    executable("openapi-python-client"),
                    "generate",
                    "--url",
                    f"{base}/openapi.json",
                    "--meta",
                    "none",
                    "--config",
                    str(config),
                    "--output-path",
                    str(work / package),
                ]
            )
            made[door] = Oracle(package, base)
        yield made
    finally:
        for oracle in made.values():
            oracle.close()
        sys.path.remove(str(work))
        for name in [n for n in sys.modules if n.startswith("oracle_")]:
            del sys.modules[name]


def unique(prefix: str) -> str:
    """A display name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def check_checkpoint(oracle: Oracle, checkpoint: Any, name: str) -> None:
    """A parsed checkpoint has the documented types, all four contract fields included."""
    m = oracle.models
    assert isinstance(checkpoint, m.CheckpointV1Checkpoint)
    assert checkpoint.display_name == name
    assert str(uuid.UUID(checkpoint.id)) == checkpoint.id
    assert isinstance(checkpoint.state, m.CheckpointV1CheckpointState)
    assert isinstance(checkpoint.resources.limits.memory_mib, int)
    assert isinstance(checkpoint.resources.requests.vcpus, int)
    assert isinstance(checkpoint.create_time, datetime)
    assert checkpoint.create_time.tzinfo is not None
    assert isinstance(checkpoint.etag, str)
    assert checkpoint.etag
    parts = [checkpoint, checkpoint.resources, checkpoint.resources.limits]
    parts.append(checkpoint.resources.requests)
    assert all(part.additional_properties == {} for part in parts)  # nothing undocumented


def check_error(oracle: Oracle, response: Any, status: int, code: str) -> None:
    """A documented error: its status, parsed as the Error model with its code enum."""
    assert response.status_code == status, response.content
    assert isinstance(response.parsed, oracle.models.Error)
    assert response.parsed.error.code == oracle.models.ErrorErrorCode(code)
    assert response.parsed.error.message


@pytest.mark.parametrize("door", DOORS)
def test_every_operation_through_the_generated_client(
    oracles: dict[str, Oracle], rest_doors: Doors, door: str
) -> None:
    """Create (keyed, replayed), get by id and name, update, list, delete: every answer parses
    into the generated models with the values that were sent."""
    oracle = oracles[door]
    client = oracle.client(rest_doors.both)
    create = oracle.api("checkpoint_service_create_checkpoint")
    name, key = unique("oracle"), f"oracle-{uuid.uuid4()}"
    created = create.sync_detailed(
        client=client, body=oracle.new_checkpoint(name), idempotency_key=key
    )
    assert created.status_code == 200, created.content
    checkpoint = created.parsed.data
    check_checkpoint(oracle, checkpoint, name)
    assert checkpoint.state == oracle.models.CheckpointV1CheckpointState("creating")
    replay = create.sync_detailed(
        client=client, body=oracle.new_checkpoint(name), idempotency_key=key
    )
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.parsed.data.id == checkpoint.id

    get = oracle.api("checkpoint_service_get_checkpoint")
    by_id = get.sync_detailed(checkpoint.id, client=client)
    by_name = get.sync_detailed(name, client=client)
    assert by_id.status_code == by_name.status_code == 200
    assert by_id.parsed.data.to_dict() == by_name.parsed.data.to_dict() == checkpoint.to_dict()

    update = oracle.api("checkpoint_service_update_checkpoint")
    body = oracle.models.CheckpointV1CheckpointInput(
        state=oracle.models.CheckpointV1CheckpointInputState("ready")
    )
    updated = update.sync_detailed(checkpoint.id, client=client, body=body)
    assert updated.status_code == 200, updated.content
    check_checkpoint(oracle, updated.parsed.data, name)
    assert updated.parsed.data.state == oracle.models.CheckpointV1CheckpointState("ready")
    assert updated.parsed.data.etag != checkpoint.etag

    delete = oracle.api("checkpoint_service_delete_checkpoint")
    stale = delete.sync_detailed(name, client=client, etag=checkpoint.etag)
    check_error(oracle, stale, 409, "aborted")
    deleted = delete.sync_detailed(name, client=client, etag=updated.parsed.data.etag)
    assert deleted.status_code == 200, deleted.content
    check_checkpoint(oracle, deleted.parsed.data, name)
    check_error(oracle, get.sync_detailed(checkpoint.id, client=client), 404, "not_found")


@pytest.mark.parametrize("door", DOORS)
def test_list_pages_through_the_generated_client(
    oracles: dict[str, Oracle], rest_doors: Doors, door: str
) -> None:
    """Pages of two, followed by next_page_token, hold every checkpoint once, in creation order."""
    oracle = oracles[door]
    client = oracle.client(rest_doors.both)
    create = oracle.api("checkpoint_service_create_checkpoint")
    names = [unique("paged") for _ in range(3)]
    for name in names:
        assert (
            create.sync_detailed(client=client, body=oracle.new_checkpoint(name)).status_code == 200
        )
    list_ = oracle.api("checkpoint_service_list_checkpoints")
    state = oracle.models.CheckpointServiceListCheckpointsState("creating")
    seen: list[str] = []
    kwargs: dict[str, Any] = {}
    for _ in range(1000):  # bounded: the store holds far fewer checkpoints
        page = list_.sync_detailed(client=client, page_size=2, state=state, **kwargs)
        assert page.status_code == 200, page.content
        data = page.parsed.data
        assert isinstance(data, oracle.models.CheckpointV1ListCheckpointsResponse)
        assert len(data.checkpoints) <= 2
        seen += [c.display_name for c in data.checkpoints]
        if not data.next_page_token:
            break
        kwargs = {"page_token": data.next_page_token}
    assert len(seen) == len(set(seen))
    assert [n for n in seen if n in names] == names


@pytest.mark.parametrize("door", DOORS)
def test_documented_errors_through_the_generated_client(
    oracles: dict[str, Oracle], rest_doors: Doors, door: str
) -> None:
    """401 without a token, 403 without the scope, 404, 409 and 422 parse as the Error model."""
    oracle = oracles[door]
    get = oracle.api("checkpoint_service_get_checkpoint")
    create = oracle.api("checkpoint_service_create_checkpoint")
    list_ = oracle.api("checkpoint_service_list_checkpoints")
    client = oracle.client(rest_doors.both)
    anonymous = get.sync_detailed("anything", client=oracle.client(None))
    check_error(oracle, anonymous, 401, "unauthenticated")
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    read_only = create.sync_detailed(
        client=oracle.client(rest_doors.reader), body=oracle.new_checkpoint(unique("ro"))
    )
    check_error(oracle, read_only, 403, "permission_denied")
    check_error(oracle, get.sync_detailed(unique("missing"), client=client), 404, "not_found")
    name = unique("twice")
    assert create.sync_detailed(client=client, body=oracle.new_checkpoint(name)).status_code == 200
    duplicate = create.sync_detailed(client=client, body=oracle.new_checkpoint(name))
    check_error(oracle, duplicate, 409, "already_exists")
    negative = list_.sync_detailed(client=client, page_size=-1)
    check_error(oracle, negative, 422, "invalid_argument")
    invalid = create.sync_detailed(client=client, body=oracle.new_checkpoint(" padded"))
    check_error(oracle, invalid, 422, "invalid_argument")
    assert invalid.parsed.error.details[0].field == "checkpoint.display_name"
    reused = create.sync_detailed(
        client=client, body=oracle.new_checkpoint(unique("reuse")), idempotency_key=name
    )
    assert reused.status_code == 200
    conflict = create.sync_detailed(
        client=client, body=oracle.new_checkpoint(unique("reuse")), idempotency_key=name
    )
    check_error(oracle, conflict, 422, "invalid_argument")


@pytest.mark.parametrize("door", DOORS)
def test_probes_through_the_generated_client(oracles: dict[str, Oracle], door: str) -> None:
    """/healthz and /readyz, which need no token, parse as their documented envelopes."""
    oracle = oracles[door]
    client = oracle.client(None)
    for name in ("healthz_get", "readyz_get"):
        probe = importlib.import_module(f"{oracle.package}.api.default.{name}")
        answer = probe.sync_detailed(client=client)
        assert answer.status_code == 200
        assert answer.parsed.data.to_dict()["status"] in ("ok", "serving")


def _sources(package: str) -> dict[str, str]:
    """Every generated module of a package by its relative path."""
    root = Path(str(importlib.import_module(package).__file__)).parent
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*.py")}


def test_both_doors_serve_one_document(oracles: dict[str, Oracle]) -> None:
    """The two generated clients are the same code: both doors publish one document."""
    bridge, inprocess = (_sources(oracles[door].package) for door in DOORS)
    assert bridge == inprocess
    assert any("idempotency_key" in text for text in bridge.values())
