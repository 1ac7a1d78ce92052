"""Request messages into domain terms, refusing what the contract refuses (INVALID_ARGUMENT)."""

from __future__ import annotations

import uuid
from datetime import datetime

from checkpoint.v1 import checkpoint_pb2 as pb
from checkpoint.v1 import checkpoint_service_pb2 as svc

from server.convert import PROTO_TO_STATE, resources_from_proto, timestamp_or
from server.domain import (
    Checkpoint,
    Patch,
    State,
    raise_if_invalid,
    validate_display_name,
    validate_resources,
)
from server.errors import FieldViolation, InvalidArgument

# update_mask paths (AIP-134) and the Patch fields each one sets. "*" means all of them.
_PATCH_FIELDS: dict[str, tuple[str, ...]] = {
    "display_name": ("display_name",),
    "state": ("state",),
    "resources": ("limit_memory_mib", "request_memory_mib", "request_vcpus"),
    "resources.limits": ("limit_memory_mib",),
    "resources.limits.memory_mib": ("limit_memory_mib",),
    "resources.requests": ("request_memory_mib", "request_vcpus"),
    "resources.requests.memory_mib": ("request_memory_mib",),
    "resources.requests.vcpus": ("request_vcpus",),
}
_OUTPUT_ONLY = frozenset({"id", "create_time", "update_time", "etag"})


def state_filter(value: int, field: str = "state") -> State | None:
    """The state a request names, None for CHECKPOINT_STATE_UNSPECIFIED.

    Raises:
        InvalidArgument: an enum number the service does not know.
    """
    if value == pb.CHECKPOINT_STATE_UNSPECIFIED:
        return None
    state = PROTO_TO_STATE.get(value)
    if state is None:
        raise InvalidArgument.for_field(field, f"unknown state number {value}")
    return state


def new_checkpoint(request: svc.CreateCheckpointRequest, now: datetime) -> Checkpoint:
    """The checkpoint a create request asks for, with a fresh id, in state creating.

    Raises:
        InvalidArgument: a field breaks the contract's rules.
    """
    if not request.HasField("checkpoint"):
        raise InvalidArgument.for_field("checkpoint", "is required")
    msg = request.checkpoint
    resources = resources_from_proto(msg.resources)
    violations = validate_display_name(msg.display_name, "checkpoint.display_name")
    violations += validate_resources(resources, "checkpoint.resources")
    if msg.state not in (pb.CHECKPOINT_STATE_UNSPECIFIED, pb.CHECKPOINT_STATE_CREATING):
        violations.append(
            FieldViolation(
                "checkpoint.state",
                "a new checkpoint starts in creating; move it on with UpdateCheckpoint",
            )
        )
    raise_if_invalid(violations)
    # id, create_time, update_time and etag are output only: ignored on input (AIP-203).
    return Checkpoint(
        id=str(uuid.uuid4()),
        display_name=msg.display_name,
        resources=resources,
        state=State.CREATING,
        create_time=now,
        update_time=now,
        version=1,
    )


def imported_checkpoint(msg: pb.Checkpoint, now: datetime, where: str) -> Checkpoint:
    """A checkpoint read from an import file, kept as given (id optional, state default creating).

    Raises:
        InvalidArgument: a field breaks the contract's rules.
    """
    resources = resources_from_proto(msg.resources)
    violations = validate_display_name(msg.display_name, f"{where}.display_name")
    violations += validate_resources(resources, f"{where}.resources")
    if msg.id:
        try:
            canonical = str(uuid.UUID(msg.id))
        except ValueError:
            canonical = ""
        if canonical != msg.id.lower() or not msg.id:
            violations.append(FieldViolation(f"{where}.id", "must be a canonical UUID"))
    raise_if_invalid(violations)
    return Checkpoint(
        id=msg.id.lower() if msg.id else str(uuid.uuid4()),
        display_name=msg.display_name,
        resources=resources,
        state=state_filter(msg.state, f"{where}.state") or State.CREATING,
        create_time=timestamp_or(msg, "create_time", now),
        update_time=timestamp_or(msg, "update_time", now),
        version=1,
    )


def patch_from_update(request: svc.UpdateCheckpointRequest) -> Patch:
    """The patch an update request describes: its update_mask, or every field it sets.

    Raises:
        InvalidArgument: an unknown or output-only path, or nothing to update.
    """
    msg = request.checkpoint
    if request.HasField("update_mask"):
        paths = list(request.update_mask.paths)
        if paths == ["*"]:
            paths = ["display_name", "resources", "state"]
    else:
        paths = _populated_paths(msg)
    fields: set[str] = set()
    for path in paths:
        if path in _OUTPUT_ONLY:
            raise InvalidArgument.for_field(
                "update_mask", f"{path} is output only and cannot change"
            )
        if path not in _PATCH_FIELDS:
            known = ", ".join(sorted(_PATCH_FIELDS))
            raise InvalidArgument.for_field(
                "update_mask", f"unknown path {path!r} (known: {known}, *)"
            )
        fields.update(_PATCH_FIELDS[path])
    if not fields:
        raise InvalidArgument.for_field(
            "update_mask", "names no field to update; set update_mask or a field of checkpoint"
        )
    state: State | None = None
    if "state" in fields:
        state = state_filter(msg.state, "checkpoint.state")
        if state is None:
            raise InvalidArgument.for_field("checkpoint.state", "must be set when updated")
    res = msg.resources
    return Patch(
        display_name=msg.display_name if "display_name" in fields else None,
        limit_memory_mib=res.limits.memory_mib if "limit_memory_mib" in fields else None,
        request_memory_mib=res.requests.memory_mib if "request_memory_mib" in fields else None,
        request_vcpus=res.requests.vcpus if "request_vcpus" in fields else None,
        state=state,
        expected_etag=msg.etag,
    )


def _populated_paths(msg: pb.Checkpoint) -> list[str]:
    """AIP-134: without a mask, update every field that is set to a non-default value."""
    res = msg.resources
    candidates = {
        "display_name": bool(msg.display_name),
        "state": msg.state != pb.CHECKPOINT_STATE_UNSPECIFIED,
        "resources.limits.memory_mib": res.limits.memory_mib != 0,
        "resources.requests.memory_mib": res.requests.memory_mib != 0,
        "resources.requests.vcpus": res.requests.vcpus != 0,
    }
    return [path for path, populated in candidates.items() if populated]
