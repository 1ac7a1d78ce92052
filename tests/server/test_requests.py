"""Unit tests of server.requests: create and update requests into domain values."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from checkpoint.v1 import checkpoint_pb2 as pb
from checkpoint.v1 import checkpoint_service_pb2 as svc
from google.protobuf import field_mask_pb2, timestamp_pb2

from server.domain import Patch, Resources, State
from server.errors import InvalidArgument
from server.requests import new_checkpoint, patch_from_update, state_filter

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
UUID = "0b7e4c1a-3f2d-4e5a-9b8c-7d6e5f4a3b2c"


def _valid(**changes: object) -> pb.Checkpoint:
    msg = pb.Checkpoint(
        display_name="box",
        resources=pb.Resources(
            limits=pb.ResourceLimits(memory_mib=2048),
            requests=pb.ResourceRequests(memory_mib=1024, vcpus=2),
        ),
    )
    for name, value in changes.items():
        setattr(msg, name, value)
    return msg


def _update(
    checkpoint: pb.Checkpoint | None = None, paths: list[str] | None = None
) -> svc.UpdateCheckpointRequest:
    request = svc.UpdateCheckpointRequest(checkpoint_id="box")
    if checkpoint is not None:
        request.checkpoint.CopyFrom(checkpoint)
    if paths is not None:
        request.update_mask.CopyFrom(field_mask_pb2.FieldMask(paths=paths))
    return request


# -- state_filter -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        pytest.param(pb.CHECKPOINT_STATE_UNSPECIFIED, None, id="unspecified"),
        pytest.param(pb.CHECKPOINT_STATE_CREATING, State.CREATING, id="creating"),
        pytest.param(pb.CHECKPOINT_STATE_READY, State.READY, id="ready"),
        pytest.param(pb.CHECKPOINT_STATE_FAILED, State.FAILED, id="failed"),
        pytest.param(pb.CHECKPOINT_STATE_DELETING, State.DELETING, id="deleting"),
    ],
)
def test_state_filter(number: int, expected: State | None) -> None:
    """Each enum number maps to its state; unspecified means no filter."""
    assert state_filter(number) is expected


def test_state_filter_unknown_number() -> None:
    """An enum number the service does not know is INVALID_ARGUMENT naming the field."""
    with pytest.raises(InvalidArgument, match="state: unknown state number 99"):
        state_filter(99)


# -- new_checkpoint ---------------------------------------------------------------------------


def test_new_checkpoint_from_valid_request() -> None:
    """A valid request becomes a checkpoint in creating, version 1, with a fresh lowercase id."""
    created = new_checkpoint(svc.CreateCheckpointRequest(checkpoint=_valid()), NOW)
    assert created.display_name == "box"
    assert created.resources == Resources(2048, 1024, 2)
    assert created.state is State.CREATING
    assert (created.create_time, created.update_time, created.version) == (NOW, NOW, 1)
    assert str(uuid.UUID(created.id)) == created.id


def test_new_checkpoint_ids_are_fresh() -> None:
    """Two creates get two different ids."""
    request = svc.CreateCheckpointRequest(checkpoint=_valid())
    assert new_checkpoint(request, NOW).id != new_checkpoint(request, NOW).id


def test_new_checkpoint_ignores_output_only_fields() -> None:
    """id, create_time, update_time and etag given on input are ignored."""
    msg = _valid(id=UUID, etag="v99")
    msg.create_time.CopyFrom(timestamp_pb2.Timestamp(seconds=1))
    msg.update_time.CopyFrom(timestamp_pb2.Timestamp(seconds=2))
    created = new_checkpoint(svc.CreateCheckpointRequest(checkpoint=msg), NOW)
    assert created.id != UUID
    assert (created.create_time, created.update_time) == (NOW, NOW)
    assert created.etag == "v1"


def test_new_checkpoint_accepts_explicit_creating_state() -> None:
    """Asking for state creating explicitly is allowed."""
    msg = _valid(state=pb.CHECKPOINT_STATE_CREATING)
    assert new_checkpoint(svc.CreateCheckpointRequest(checkpoint=msg), NOW).state is State.CREATING


def test_new_checkpoint_requires_the_checkpoint() -> None:
    """A request without a checkpoint is INVALID_ARGUMENT naming it."""
    with pytest.raises(InvalidArgument, match="checkpoint: is required"):
        new_checkpoint(svc.CreateCheckpointRequest(), NOW)


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        pytest.param({"display_name": ""}, ["checkpoint.display_name"], id="empty-name"),
        pytest.param({"display_name": UUID}, ["checkpoint.display_name"], id="uuid-name"),
        pytest.param({"display_name": "a/b"}, ["checkpoint.display_name"], id="slash-name"),
        pytest.param({"state": pb.CHECKPOINT_STATE_READY}, ["checkpoint.state"], id="starts-ready"),
        pytest.param(
            {"display_name": "", "state": pb.CHECKPOINT_STATE_DELETING},
            ["checkpoint.display_name", "checkpoint.state"],
            id="several-violations",
        ),
    ],
)
def test_new_checkpoint_refuses(changes: dict[str, object], fields: list[str]) -> None:
    """Each broken rule is a field violation named under checkpoint."""
    with pytest.raises(InvalidArgument) as caught:
        new_checkpoint(svc.CreateCheckpointRequest(checkpoint=_valid(**changes)), NOW)
    assert [v.field for v in caught.value.violations] == fields


@pytest.mark.parametrize(
    ("limit", "request_mib", "vcpus", "fields"),
    [
        pytest.param(
            0,
            0,
            0,
            ["checkpoint.resources.requests.memory_mib", "checkpoint.resources.requests.vcpus"],
            id="no-resources",
        ),
        pytest.param(1, 2, 1, ["checkpoint.resources.limits.memory_mib"], id="limit-below"),
        pytest.param(2**64 - 1, 1, 1, ["checkpoint.resources.limits.memory_mib"], id="uint64-max"),
    ],
)
def test_new_checkpoint_refuses_resources(
    limit: int, request_mib: int, vcpus: int, fields: list[str]
) -> None:
    """Resource rules are checked with field paths under checkpoint.resources."""
    msg = _valid()
    msg.resources.limits.memory_mib = limit
    msg.resources.requests.memory_mib = request_mib
    msg.resources.requests.vcpus = vcpus
    with pytest.raises(InvalidArgument) as caught:
        new_checkpoint(svc.CreateCheckpointRequest(checkpoint=msg), NOW)
    assert [v.field for v in caught.value.violations] == fields


# -- patch_from_update ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        pytest.param(["display_name"], Patch(display_name="box"), id="display_name"),
        pytest.param(["state"], Patch(state=State.READY), id="state"),
        pytest.param(
            ["resources"],
            Patch(limit_memory_mib=2048, request_memory_mib=1024, request_vcpus=2),
            id="resources",
        ),
        pytest.param(["resources.limits"], Patch(limit_memory_mib=2048), id="limits"),
        pytest.param(
            ["resources.limits.memory_mib"], Patch(limit_memory_mib=2048), id="limit-memory"
        ),
        pytest.param(
            ["resources.requests"],
            Patch(request_memory_mib=1024, request_vcpus=2),
            id="requests",
        ),
        pytest.param(
            ["resources.requests.memory_mib"], Patch(request_memory_mib=1024), id="req-memory"
        ),
        pytest.param(["resources.requests.vcpus"], Patch(request_vcpus=2), id="vcpus"),
        pytest.param(
            ["*"],
            Patch(
                display_name="box",
                limit_memory_mib=2048,
                request_memory_mib=1024,
                request_vcpus=2,
                state=State.READY,
            ),
            id="star",
        ),
        pytest.param(
            ["display_name", "resources.requests.vcpus"],
            Patch(display_name="box", request_vcpus=2),
            id="two-paths",
        ),
    ],
)
def test_patch_from_mask(paths: list[str], expected: Patch) -> None:
    """update_mask names exactly the fields the patch sets; "*" names them all."""
    request = _update(_valid(state=pb.CHECKPOINT_STATE_READY), paths)
    assert patch_from_update(request) == expected


def test_patch_mask_sets_zero_values() -> None:
    """A masked field is set even to its zero value (so it can be validated and refused)."""
    request = _update(pb.Checkpoint(), ["display_name", "resources.requests.vcpus"])
    assert patch_from_update(request) == Patch(display_name="", request_vcpus=0)


def test_patch_carries_the_etag() -> None:
    """The checkpoint's etag becomes the patch's expected etag."""
    request = _update(_valid(etag="v3"), ["display_name"])
    assert patch_from_update(request).expected_etag == "v3"


@pytest.mark.parametrize(
    ("checkpoint", "expected"),
    [
        pytest.param(pb.Checkpoint(display_name="new"), Patch(display_name="new"), id="name"),
        pytest.param(
            pb.Checkpoint(state=pb.CHECKPOINT_STATE_FAILED), Patch(state=State.FAILED), id="state"
        ),
        pytest.param(
            pb.Checkpoint(resources=pb.Resources(requests=pb.ResourceRequests(vcpus=8))),
            Patch(request_vcpus=8),
            id="vcpus-only",
        ),
        pytest.param(
            pb.Checkpoint(resources=pb.Resources(limits=pb.ResourceLimits(memory_mib=9))),
            Patch(limit_memory_mib=9),
            id="limit-only",
        ),
        pytest.param(
            _valid(state=pb.CHECKPOINT_STATE_READY),
            Patch(
                display_name="box",
                limit_memory_mib=2048,
                request_memory_mib=1024,
                request_vcpus=2,
                state=State.READY,
            ),
            id="everything",
        ),
        pytest.param(
            pb.Checkpoint(display_name="n", etag="v2"),
            Patch(display_name="n", expected_etag="v2"),
            id="etag-is-not-a-field",
        ),
    ],
)
def test_patch_implied_mask(checkpoint: pb.Checkpoint, expected: Patch) -> None:
    """Without update_mask, every field set to a non-default value is updated."""
    assert patch_from_update(_update(checkpoint)) == expected


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        pytest.param(_update(), "names no field to update", id="nothing-set"),
        pytest.param(_update(pb.Checkpoint()), "names no field to update", id="empty-checkpoint"),
        pytest.param(_update(pb.Checkpoint(etag="v1")), "names no field to update", id="only-etag"),
        pytest.param(_update(_valid(), []), "names no field to update", id="empty-mask"),
        pytest.param(_update(_valid(), ["color"]), "unknown path 'color'", id="unknown-path"),
        pytest.param(
            _update(_valid(), ["displayName"]), "unknown path 'displayName'", id="json-name-path"
        ),
        pytest.param(
            _update(_valid(), ["resources.limits.cpu"]), "unknown path", id="unknown-subpath"
        ),
        pytest.param(_update(_valid(), ["*", "state"]), "unknown path '*'", id="star-plus-path"),
        pytest.param(_update(_valid(), ["id"]), "id is output only", id="output-only-id"),
        pytest.param(
            _update(_valid(), ["create_time"]), "create_time is output only", id="create-time"
        ),
        pytest.param(
            _update(_valid(), ["update_time"]), "update_time is output only", id="update-time"
        ),
        pytest.param(_update(_valid(), ["etag"]), "etag is output only", id="etag"),
    ],
)
def test_patch_refuses_bad_masks(request_: svc.UpdateCheckpointRequest, message: str) -> None:
    """An unknown or output-only path, or nothing to update, is INVALID_ARGUMENT on update_mask."""
    with pytest.raises(InvalidArgument) as caught:
        patch_from_update(request_)
    assert message in caught.value.message
    assert [v.field for v in caught.value.violations] == ["update_mask"]


@pytest.mark.parametrize(
    "paths", [pytest.param(["state"], id="state-path"), pytest.param(["*"], id="star")]
)
def test_patch_state_unspecified_is_refused(paths: list[str]) -> None:
    """Masking state without setting it is INVALID_ARGUMENT on checkpoint.state."""
    with pytest.raises(InvalidArgument) as caught:
        patch_from_update(_update(_valid(), paths))
    assert [v.field for v in caught.value.violations] == ["checkpoint.state"]
    assert "must be set when updated" in caught.value.message


def test_patch_unknown_state_number_is_refused() -> None:
    """A state number the service does not know is INVALID_ARGUMENT on checkpoint.state."""
    msg = pb.Checkpoint()
    msg.state = 42  # type: ignore[assignment]
    with pytest.raises(InvalidArgument) as caught:
        patch_from_update(_update(msg))
    assert [v.field for v in caught.value.violations] == ["checkpoint.state"]
