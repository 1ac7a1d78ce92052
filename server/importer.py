"""`checkpoint-server import`: load checkpoints in the REST `data` shape from a JSON file.

Idempotent by id: an entry with an id replaces that checkpoint; an entry without one takes the id
of the checkpoint that already has its display name, or a new one. All entries are validated
first and written in one transaction, so a bad file changes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from checkpoint.v1 import checkpoint_pb2 as pb
from google.protobuf import json_format

from server.domain import ByName, Checkpoint
from server.errors import InvalidArgument, NotFound
from server.requests import imported_checkpoint
from server.store import Store

_STATE_NAMES = {
    value.name.removeprefix("CHECKPOINT_STATE_").lower(): value.name
    for value in pb.CheckpointState.DESCRIPTOR.values
    if value.number != pb.CHECKPOINT_STATE_UNSPECIFIED
}


def read_import_file(path: Path) -> list[tuple[Checkpoint, bool]]:
    """The checkpoints a file holds, validated, each with whether the file gave its id.

    Raises:
        InvalidArgument: the file is not a JSON array of valid checkpoints.
    """
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"cannot read {path}: {exc}") from exc
    if not isinstance(entries, list):
        raise InvalidArgument(f"{path}: expected a JSON array of checkpoints")
    now = datetime.now(UTC)
    out: list[tuple[Checkpoint, bool]] = []
    for index, entry in enumerate(entries):
        where = f"[{index}]"
        message = _parse(entry, where)
        out.append((imported_checkpoint(message, now, where), bool(message.id)))
    names = [c.display_name for c, _ in out]
    ids = [c.id for c, _ in out]
    if len(set(names)) != len(names) or len(set(ids)) != len(ids):
        raise InvalidArgument(f"{path}: two entries share a display_name or an id")
    return out


async def import_checkpoints(store: Store, entries: list[tuple[Checkpoint, bool]]) -> int:
    """Write the checkpoints; those without a given id reuse the id of their display name."""
    resolved: list[Checkpoint] = []
    for given, has_id in entries:
        checkpoint = given
        if not has_id:
            try:
                existing = await store.get(ByName(checkpoint.display_name))
            except NotFound:
                existing = None
            if existing is not None:
                checkpoint = Checkpoint(
                    id=existing.id,
                    display_name=checkpoint.display_name,
                    resources=checkpoint.resources,
                    state=checkpoint.state,
                    create_time=existing.create_time,
                    update_time=checkpoint.update_time,
                    version=checkpoint.version,
                )
        resolved.append(checkpoint)
    return await store.import_many(resolved)


def _parse(entry: Any, where: str) -> pb.Checkpoint:
    if not isinstance(entry, dict):
        raise InvalidArgument(f"{where}: expected an object")
    entry = dict(entry)
    state = entry.get("state")
    if isinstance(state, str):
        if state not in _STATE_NAMES:
            raise InvalidArgument.for_field(
                f"{where}.state", f"must be one of {', '.join(_STATE_NAMES)}"
            )
        entry["state"] = _STATE_NAMES[state]
    try:
        return json_format.ParseDict(entry, pb.Checkpoint())
    except json_format.ParseError as exc:
        raise InvalidArgument(f"{where}: {exc}") from exc
