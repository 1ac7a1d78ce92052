"""CheckpointService: each RPC parses its request into domain terms, calls the store, converts back.

Auth, rate limits and error translation happen around it, in server.guard.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import grpc
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc

from server.call_observer import current_caller
from server.convert import STATE_TO_PROTO, checkpoint_to_proto
from server.domain import Checkpoint, Lookup, apply_patch, parse_lookup
from server.idempotency import REPLAYED, OnceOnly, request_key
from server.paging import PageTokens, page_size
from server.requests import new_checkpoint, patch_from_update, state_filter
from server.store import Store
from server.watch import WatchHub

Context = grpc.aio.ServicerContext[object, object]
ACCEPTED = (("x-stream-accepted", "1"),)
"""Initial metadata sent once a watch passed its checks, before its first event."""
REPLY_LIMIT = 4096
"""GetCheckpoint replies kept at most (a full set starts over)."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class CheckpointServicer(svc_grpc.CheckpointServiceServicer):
    def __init__(
        self,
        store: Store,
        pages: PageTokens,
        watches: WatchHub,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store, self._pages, self._clock = store, pages, clock
        self._once = OnceOnly(store)
        self._watches = watches
        # checkpoint_id as asked -> (its parsed lookup, the Checkpoint found, the reply). A
        # Checkpoint is immutable, so the same object always makes the same reply: a store that
        # hands out the same object for an unchanged row (SQLite's read cache) spares the
        # conversion, and a known checkpoint_id its parse. Replies are only ever serialized
        # (grpc, the in-process channel), never changed. Only ids that parsed are kept.
        self._replies: dict[str, tuple[Lookup, Checkpoint, svc.GetCheckpointResponse]] = {}

    async def GetCheckpoint(
        self, request: svc.GetCheckpointRequest, context: Context
    ) -> svc.GetCheckpointResponse:
        asked = request.checkpoint_id
        kept = self._replies.get(asked)
        lookup = parse_lookup(asked) if kept is None else kept[0]
        found = await self._store.get(lookup)
        if kept is not None and kept[1] is found:
            return kept[2]
        response = svc.GetCheckpointResponse()
        checkpoint_to_proto(found, response.checkpoint)
        if len(self._replies) >= REPLY_LIMIT:
            self._replies.clear()
        self._replies[asked] = (lookup, found, response)
        return response

    async def ListCheckpoints(
        self, request: svc.ListCheckpointsRequest, context: Context
    ) -> svc.ListCheckpointsResponse:
        size = page_size(request.page_size)
        state = state_filter(request.state)
        filter_number = 0 if state is None else STATE_TO_PROTO[state]
        after = self._pages.decode(request.page_token, filter_number)
        rows = await self._store.list(state=state, after=after, limit=size + 1)
        response = svc.ListCheckpointsResponse()
        for _, found in rows[:size]:
            checkpoint_to_proto(found, response.checkpoints.add())
        if len(rows) > size:
            response.next_page_token = self._pages.encode(rows[size - 1][0], filter_number)
        return response

    async def CreateCheckpoint(
        self, request: svc.CreateCheckpointRequest, context: Context
    ) -> svc.CreateCheckpointResponse:
        now = self._clock()
        checkpoint = new_checkpoint(request, now)
        if request.request_id:
            key = request_key(current_caller(), request)
            response, replayed = await self._once.create(key, checkpoint, now)
            if replayed:
                context.set_trailing_metadata(REPLAYED)
            return response
        created = await self._store.create(checkpoint)
        return svc.CreateCheckpointResponse(checkpoint=checkpoint_to_proto(created))

    async def UpdateCheckpoint(
        self, request: svc.UpdateCheckpointRequest, context: Context
    ) -> svc.UpdateCheckpointResponse:
        lookup = parse_lookup(request.checkpoint_id)
        patch = patch_from_update(request)
        now = self._clock()
        updated = await self._store.update(lookup, lambda current: apply_patch(current, patch, now))
        return svc.UpdateCheckpointResponse(checkpoint=checkpoint_to_proto(updated))

    async def DeleteCheckpoint(
        self, request: svc.DeleteCheckpointRequest, context: Context
    ) -> svc.DeleteCheckpointResponse:
        deleted = await self._store.delete(parse_lookup(request.checkpoint_id), request.etag)
        return svc.DeleteCheckpointResponse(checkpoint=checkpoint_to_proto(deleted))

    async def WatchCheckpoints(
        self, request: svc.WatchCheckpointsRequest, context: Context
    ) -> AsyncIterator[svc.WatchCheckpointsResponse]:
        async def accepted() -> None:
            await context.send_initial_metadata(ACCEPTED)

        async for event in self._watches.watch(request, accepted):
            yield event
