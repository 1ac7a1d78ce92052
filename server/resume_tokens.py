"""Opaque, signed resume tokens for WatchCheckpoints: a position in the change history.

A token holds the seq of the last change an event reported (for the snapshot, the seq the
snapshot was read at), signed with a key kept in the store, so a token from one replica resumes
on any other. It is not bound to the watch's filters: it names a point in time, which means the
same for every filter. A forged, truncated or foreign token is INVALID_ARGUMENT.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct

from server.errors import InvalidArgument

_VERSION = 1
_LAYOUT = struct.Struct(">Bq")  # version, change seq
_MAC_BYTES = 16


class ResumeTokens:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def encode(self, seq: int) -> str:
        payload = _LAYOUT.pack(_VERSION, seq)
        return base64.urlsafe_b64encode(payload + self._mac(payload)).decode().rstrip("=")

    def decode(self, token: str) -> int:
        """The change seq a token stands for.

        Raises:
            InvalidArgument: the token was not made by this store.
        """
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError) as exc:
            raise _invalid() from exc
        payload, mac = raw[: _LAYOUT.size], raw[_LAYOUT.size :]
        if len(raw) != _LAYOUT.size + _MAC_BYTES or not hmac.compare_digest(
            mac, self._mac(payload)
        ):
            raise _invalid()
        version, seq = _LAYOUT.unpack(payload)
        if version != _VERSION or seq < 0:
            raise _invalid()
        return int(seq)

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]


def _invalid() -> InvalidArgument:
    return InvalidArgument.for_field(
        "resume_token",
        "is not a token this service issued; pass an event's resume_token unchanged",
    )
