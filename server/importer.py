"""`checkpoint-server import`: load checkpoints into a store, idempotent by id.

Idempotent by id: an entry with an id replaces that checkpoint; an entry without one takes the id
of the checkpoint that already has its display name, or a new one. All entries are validated
first and written in one transaction, so a bad file changes nothing. Reading the file (JSON in
the REST `data` shape) is the entry point's part: it decodes with the bridge's codec, so the
file's shape is exactly what REST clients see.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from checkpoint.v1 import checkpoint_pb2 as pb

from server.domain import ByName, Checkpoint
from server.errors import InvalidArgument, NotFound
from server.requests import imported_checkpoint
from server.store import Store, open_store


def validate_entries(
    messages: Sequence[pb.Checkpoint], source: str
) -> list[tuple[Checkpoint, bool]]:
    """The checkpoints to import, validated, each with whether its entry gave its id.

    Raises:
        InvalidArgument: an entry breaks the contract's rules, or two share a name or an id.
    """
    now = datetime.now(UTC)
    out = [
        (imported_checkpoint(message, now, f"[{index}]"), bool(message.id))
        for index, message in enumerate(messages)
    ]
    names = [c.display_name for c, _ in out]
    ids = [c.id for c, _ in out]
    if len(set(names)) != len(names) or len(set(ids)) != len(ids):
        raise InvalidArgument(f"{source}: two entries share a display_name or an id")
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


async def import_file(database: str, messages: Sequence[pb.Checkpoint], source: str) -> int:
    """Validate messages (named after source in errors) and write them into database.

    Raises:
        InvalidArgument: an entry breaks the contract's rules.
    """
    entries = validate_entries(messages, source)
    store = open_store(database)
    try:
        return await import_checkpoints(store, entries)
    finally:
        await store.close()
