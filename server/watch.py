"""WatchCheckpoints: a snapshot, then every committed change, resumable on any replica.

Without a resume_token: one EXISTING event per matching checkpoint and one SYNCED, all read at
one instant of the history (Store.snapshot) and carrying its seq as their token; then every change
committed after it (server.changefeed), each once, in commit order. With a resume_token: no
snapshot, only the changes after it. Filters: a checkpoint (resolved as GetCheckpoint does, to its
id, so a rename does not lose it) and a state (for a change, the state after it; for a delete, the
last state). `--max-watchers` bounds the watches open at once per process; more are refused with
RESOURCE_EXHAUSTED and RetryInfo. `close` (SIGTERM) ends every watch with UNAVAILABLE.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable

from checkpoint.v1 import checkpoint_service_pb2 as svc

from server.changefeed import SHUTDOWN_MESSAGE, ChangeFeed
from server.config import DEFAULT_MAX_WATCHERS
from server.convert import checkpoint_to_proto
from server.domain import ById, Checkpoint, parse_lookup
from server.errors import TooManyWatchers, Unavailable
from server.requests import state_filter
from server.resume_tokens import ResumeTokens
from server.store import ChangeKind, ChangeRecord, Store

WATCHERS_RETRY_SECONDS = 1.0
EVENT_CACHE = 4096
"""Change events kept built: every watcher of a change gets the same message object."""

EVENT_TYPES: dict[ChangeKind, svc.WatchEventType.ValueType] = {
    ChangeKind.CREATED: svc.WATCH_EVENT_TYPE_CREATED,
    ChangeKind.UPDATED: svc.WATCH_EVENT_TYPE_UPDATED,
    ChangeKind.DELETED: svc.WATCH_EVENT_TYPE_DELETED,
}


class WatchHub:
    """The watches of one process: their count, the shared change feed, the resume tokens."""

    def __init__(
        self, store: Store, tokens: ResumeTokens, max_watchers: int = DEFAULT_MAX_WATCHERS
    ) -> None:
        self._store, self._tokens, self._max = store, tokens, max_watchers
        self._feed = ChangeFeed(store)
        self._active = 0
        self._closed = False
        self._built: OrderedDict[int, svc.WatchCheckpointsResponse] = OrderedDict()

    @property
    def active(self) -> int:
        return self._active

    async def close(self) -> None:
        """End every open watch with UNAVAILABLE; new ones are refused the same way."""
        self._closed = True
        await self._feed.close()

    async def watch(
        self,
        request: svc.WatchCheckpointsRequest,
        accepted: Callable[[], Awaitable[None]] | None = None,
    ) -> AsyncGenerator[svc.WatchCheckpointsResponse, None]:
        """The events of one watch; `accepted` is awaited once every check has passed (the
        servicer sends the response headers then, so a bridge can start its answer).

        Raises:
            InvalidArgument: a bad state, checkpoint_id or a forged resume_token.
            NotFound: checkpoint_id names no checkpoint.
            OutOfRange: the resume_token is older than the retained history.
            TooManyWatchers: --max-watchers watches are open in this process.
            Unavailable: the server is shutting down, or the store cannot answer.
        """
        state = state_filter(request.state)
        cursor = self._tokens.decode(request.resume_token) if request.resume_token else None
        target = await self._target(request.checkpoint_id, resuming=cursor is not None)
        if self._closed:
            raise Unavailable(SHUTDOWN_MESSAGE)
        if self._active >= self._max:
            raise TooManyWatchers(
                f"this server already has {self._max} open watches; retry later or elsewhere",
                retry_after=WATCHERS_RETRY_SECONDS,
            )
        self._active += 1
        try:
            if cursor is not None:
                await self._store.changes_after(cursor, 1)  # OUT_OF_RANGE now, not later
                if accepted is not None:
                    await accepted()
            else:
                cursor, existing = await self._store.snapshot(state, target)
                if accepted is not None:
                    await accepted()
                token = self._tokens.encode(cursor)
                for found in existing:
                    yield _event(svc.WATCH_EVENT_TYPE_EXISTING, found, token)
                yield _event(svc.WATCH_EVENT_TYPE_SYNCED, None, token)
            sub = self._feed.subscribe(cursor)
            try:
                async for record in self._feed.changes(sub):
                    c = record.checkpoint
                    if (target is None or c.id == target) and (state is None or c.state is state):
                        yield self._change_event(record)
            finally:
                self._feed.unsubscribe(sub)
        finally:
            self._active -= 1

    def _change_event(self, record: ChangeRecord) -> svc.WatchCheckpointsResponse:
        """The event of a change, built once for all watchers (token, proto conversion)."""
        built = self._built.get(record.seq)
        if built is None:
            token = self._tokens.encode(record.seq)
            built = _event(EVENT_TYPES[record.kind], record.checkpoint, token)
            self._built[record.seq] = built
            if len(self._built) > EVENT_CACHE:
                self._built.popitem(last=False)
        return built

    async def _target(self, checkpoint_id: str, *, resuming: bool) -> str | None:
        """The id a watch is limited to, or None. Resuming, a UUID need not exist any more
        (its deletion may be among the changes to deliver); a display name must resolve."""
        if not checkpoint_id:
            return None
        lookup = parse_lookup(checkpoint_id)
        if resuming and isinstance(lookup, ById):
            return lookup.id
        found: Checkpoint = await self._store.get(lookup)
        return found.id


def _event(
    kind: svc.WatchEventType.ValueType, found: Checkpoint | None, token: str
) -> svc.WatchCheckpointsResponse:
    event = svc.WatchCheckpointsResponse(type=kind, resume_token=token)
    if found is not None:
        checkpoint_to_proto(found, event.checkpoint)
    return event
