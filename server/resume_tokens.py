"""Opaque, signed resume tokens for WatchCheckpoints: a position in the change history.

A token holds the seq of the last change an event reported (for the snapshot, the seq the
snapshot was read at), signed with a key kept in the store, so a token from one replica resumes
on any other. It is not bound to the watch's filters: it names a point in time, which means the
same for every filter. A forged, truncated or foreign token is INVALID_ARGUMENT.
"""

from __future__ import annotations

import struct

from server.errors import InvalidArgument
from server.signed_tokens import SignedTokens

_VERSION = 1
_LAYOUT = struct.Struct(">Bq")  # version, change seq


class ResumeTokens:
    def __init__(self, key: bytes) -> None:
        self._tokens = SignedTokens(key, _LAYOUT)

    def encode(self, seq: int) -> str:
        return self._tokens.seal(_VERSION, seq)

    def decode(self, token: str) -> int:
        """The change seq a token stands for.

        Raises:
            InvalidArgument: the token was not made by this store.
        """
        fields = self._tokens.open(token)
        if fields is None or fields[0] != _VERSION or fields[1] < 0:
            raise _invalid()
        return fields[1]


def _invalid() -> InvalidArgument:
    return InvalidArgument.for_field(
        "resume_token",
        "is not a token this service issued; pass an event's resume_token unchanged",
    )
