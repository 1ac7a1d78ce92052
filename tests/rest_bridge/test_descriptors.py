"""Unit tests of rest_bridge.descriptors: the one resolver of proto and JSON field names."""

from __future__ import annotations

import pytest
from checkpoint.v1 import checkpoint_pb2 as pb
from checkpoint.v1 import checkpoint_service_pb2 as service_pb
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from rest_bridge.descriptors import (
    descriptor_of,
    enum_of,
    find_field,
    is_map,
    is_well_known,
    message_of,
    resolve_field,
    resolve_path,
)
from tests.rest_bridge.protos import all_types_class

CHECKPOINT: Descriptor = pb.Checkpoint.DESCRIPTOR
UPDATE: Descriptor = service_pb.UpdateCheckpointRequest.DESCRIPTOR


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("display_name", "display_name", id="proto-name"),
        pytest.param("displayName", "display_name", id="json-name"),
        pytest.param("DisplayName", None, id="other-case"),
        pytest.param("colour", None, id="unknown"),
        pytest.param("", None, id="empty"),
    ],
)
def test_find_field(name: str, expected: str | None) -> None:
    """A field is found by its proto name or its JSON name, nothing else."""
    fld = find_field(CHECKPOINT, name)
    assert (fld.name if fld else None) == expected


@pytest.mark.parametrize(
    ("dotted", "names"),
    [
        pytest.param("checkpoint.display_name", ["checkpoint", "display_name"], id="proto"),
        pytest.param(
            "checkpoint.resources.limits.memoryMib",
            ["checkpoint", "resources", "limits", "memory_mib"],
            id="mixed",
        ),
        pytest.param("updateMask", ["update_mask"], id="json-top"),
        pytest.param("update_mask.paths", None, id="inside-well-known"),
        pytest.param("checkpoint.display_name.x", None, id="inside-scalar"),
        pytest.param("checkpoint.nope", None, id="unknown-part"),
        pytest.param("checkpoint..display_name", None, id="empty-part"),
    ],
)
def test_resolve_path(dotted: str, names: list[str] | None) -> None:
    """A dotted path walks message fields by proto or JSON name, never into well-known types."""
    chain = resolve_path(UPDATE, dotted)
    assert ([f.name for f in chain] if chain is not None else None) == names
    last = resolve_field(UPDATE, dotted)
    assert (last.name if last else None) == (names[-1] if names else None)


def test_accessors() -> None:
    """Typed accessors answer for the right kind of field and refuse the wrong one."""
    desc = descriptor_of(all_types_class()())
    inner = desc.fields_by_name["inner"]
    color = desc.fields_by_name["color"]
    assert message_of(inner).name == "Inner"
    assert enum_of(color).name == "Color"
    with pytest.raises(TypeError):
        message_of(color)
    with pytest.raises(TypeError):
        enum_of(inner)
    assert is_map(desc.fields_by_name["m"])
    assert not is_map(desc.fields_by_name["r_inner"])
    when: FieldDescriptor = desc.fields_by_name["when"]
    assert is_well_known(message_of(when))
    assert not is_well_known(message_of(inner))
