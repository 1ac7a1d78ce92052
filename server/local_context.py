"""The servicer context of an in-process call (server.local_channel): metadata in, status out.

It behaves as grpc's aio context does for what servicers and the call guard use (abort raises
AbortError, set_code/set_details, trailing metadata, time_remaining); the rest is inert.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import grpc
from grpc.aio import Metadata

log = logging.getLogger(__name__)

MetadataPairs = tuple[tuple[str, str | bytes], ...]


def rpc_error(
    code: grpc.StatusCode,
    details: str,
    trailing: Iterable[tuple[str, str | bytes]] = (),
    initial: Iterable[tuple[str, str | bytes]] = (),
) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        code, Metadata(*initial), Metadata(*trailing), details, "in-process call (no network)"
    )


class LocalContext(grpc.aio.ServicerContext[Any, Any]):
    """The servicer context of an in-process unary call: metadata in, status and trailers out.

    abort raises grpc.aio.AbortError, as grpc's does, so code that tells an abort from a failure
    (the call guard does) behaves the same; LocalChannel turns it into an AioRpcError.
    """

    def __init__(self, metadata: MetadataPairs, deadline: float | None) -> None:
        self._metadata = metadata
        self._deadline = deadline
        self._code: grpc.StatusCode | None = None
        self._details: str | None = None
        self._trailing: MetadataPairs = ()
        self._aborted = False
        self.initial_metadata: MetadataPairs = ()
        """What the handler sent as initial metadata (server.call_observer: x-request-id)."""
        self._initial_sent = False

    # -- what servicers and interceptors use ----------------------------------------------------

    def invocation_metadata(self) -> Any:
        return self._metadata

    async def abort(
        self,
        code: grpc.StatusCode,
        details: str = "",
        trailing_metadata: Any = (),
    ) -> Any:
        if self._aborted:
            raise grpc.aio.UsageError("Abort already called!")
        self._aborted = True
        self._code, self._details = code, details
        if trailing_metadata:
            self._trailing = tuple(trailing_metadata)
        raise grpc.aio.AbortError("Locally aborted.")

    async def abort_with_status(self, status: grpc.Status) -> Any:
        await self.abort(status.code, status.details, status.trailing_metadata)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def set_trailing_metadata(self, trailing_metadata: Any) -> None:
        self._trailing = tuple(trailing_metadata)

    def code(self) -> Any:
        return self._code

    def details(self) -> Any:
        return self._details

    def trailing_metadata(self) -> Any:
        return self._trailing

    def time_remaining(self) -> Any:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def failure(self) -> grpc.aio.AioRpcError | None:
        """The error the caller gets for the status set on this context; None when it is OK."""
        if self._code is None or self._code is grpc.StatusCode.OK:
            return None
        return rpc_error(self._code, self._details or "", self._trailing, self.initial_metadata)

    # -- the rest of the interface: inert for a unary call without a peer ------------------------

    async def read(self) -> Any:
        raise grpc.aio.UsageError("read() is for streaming requests; this call is unary")

    async def write(self, message: Any) -> None:
        raise grpc.aio.UsageError("write() is for streaming responses; this call is unary")

    async def send_initial_metadata(self, initial_metadata: Any) -> None:
        if self._initial_sent:
            raise grpc.aio.UsageError("Send initial metadata failed: already sent")
        self._initial_sent = True
        self.initial_metadata = tuple(initial_metadata)

    def add_done_callback(self, callback: Any) -> None:
        raise grpc.aio.UsageError("done callbacks are not supported in-process")

    def set_compression(self, compression: grpc.Compression) -> None:
        return None

    def disable_next_message_compression(self) -> None:
        return None

    def peer(self) -> str:
        return "inprocess"

    def peer_identities(self) -> Iterable[bytes] | None:
        return None

    def peer_identity_key(self) -> str | None:
        return None

    def auth_context(self) -> Mapping[str, Iterable[bytes]]:
        return {}

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return False


def unexpected_error(method: str, exc: BaseException) -> grpc.aio.AioRpcError:
    """What grpc's aio server answers when a handler raises something other than an abort
    (logged with its traceback, as grpc logs it)."""
    log.error("unexpected %r raised by the handler of %s", exc, method, exc_info=exc)
    return rpc_error(grpc.StatusCode.UNKNOWN, f"Unexpected {type(exc)}: {exc}")
