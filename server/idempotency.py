"""Idempotent creates (AIP-155 request_id): a retried create answers what the first one did.

The key is stored per token name with a hash of the request, in the store, so every replica
agrees. Only a successful create records its answer; a failed one releases its key, so the
retry runs again (and gets the same refusal, or succeeds once a transient failure has passed).
Expired keys are never honoured (every claim compares times) and are deleted at most every
PURGE_EVERY by each server, on the first keyed create after that.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import datetime, timedelta

from checkpoint.v1 import checkpoint_service_pb2 as svc

from server.convert import checkpoint_to_proto
from server.domain import Checkpoint
from server.errors import CheckpointError, InvalidArgument
from server.store import Completion, RequestKey, Store

log = logging.getLogger(__name__)

KEY_TTL = timedelta(hours=24)
"""How long a key is remembered after its first use."""
LEASE = timedelta(seconds=60)
"""How long a claimed key without an outcome blocks retries (409): longer than any sane
deadline, so a claim whose call died (a crashed replica) is given up after it."""
PURGE_EVERY = timedelta(minutes=10)

REPLAYED: tuple[tuple[str, str], ...] = (("idempotent-replayed", "true"),)
"""The trailing metadata of a replayed answer."""


def request_key(scope: str, request: svc.CreateCheckpointRequest) -> RequestKey:
    """The stored key of a create with a request_id: the token name, the canonical UUID and a
    SHA-256 of the request without its request_id.

    Raises:
        InvalidArgument: request_id is not a UUID (AIP-155).
    """
    try:
        request_id = str(uuid.UUID(request.request_id))
    except ValueError:
        raise InvalidArgument.for_field(
            "request_id", "must be a UUID, e.g. 8e03978e-40d5-43e8-bc93-6894a57f9324"
        ) from None
    unkeyed = svc.CreateCheckpointRequest()
    unkeyed.CopyFrom(request)
    unkeyed.ClearField("request_id")
    fingerprint = hashlib.sha256(unkeyed.SerializeToString(deterministic=True)).digest()
    return RequestKey(scope=scope, request_id=request_id, fingerprint=fingerprint)


class OnceOnly:
    """Runs keyed creates at most once per key; the servicer's helper for request_id."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._next_purge: datetime | None = None

    async def create(
        self, key: RequestKey, checkpoint: Checkpoint, now: datetime
    ) -> tuple[svc.CreateCheckpointResponse, bool]:
        """The create's answer and whether it is a replay of an earlier call's.

        Raises:
            InvalidArgument: the key was used with another request.
            RequestInProgress: the key's first call is still running.
            AlreadyExists: as an unkeyed create (the key is released).
        """
        await self._purge_when_due(now)
        stored = await self._store.claim_request(key, now, ttl=KEY_TTL, lease=LEASE)
        if stored is not None:
            return svc.CreateCheckpointResponse.FromString(stored), True
        response = svc.CreateCheckpointResponse(checkpoint=checkpoint_to_proto(checkpoint))
        try:
            await self._store.create(checkpoint, Completion(key, response.SerializeToString()))
        except BaseException:
            try:
                await self._store.release_request(key)
            except CheckpointError:  # the claim then lapses after LEASE
                log.warning("could not release a failed create's request_id", exc_info=True)
            raise
        return response, False

    async def _purge_when_due(self, now: datetime) -> None:
        """Delete expired keys, at most every PURGE_EVERY; a failure waits for the next turn."""
        if self._next_purge is not None and now < self._next_purge:
            return
        self._next_purge = now + PURGE_EVERY
        try:
            purged = await self._store.purge_requests(now)
        except CheckpointError:
            log.warning("could not purge expired request_ids", exc_info=True)
            return
        if purged:
            log.info("purged %d expired request_ids", purged)
