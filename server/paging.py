"""Opaque, signed page tokens for ListCheckpoints (AIP-158).

A token holds the last sequence number served and the filter it was served under, signed with a
key kept in the store (so every replica accepts every other's tokens). A forged, truncated or
foreign token, or one reused with another filter, is INVALID_ARGUMENT.
"""

from __future__ import annotations

import struct

from server.errors import InvalidArgument
from server.signed_tokens import SignedTokens

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

_VERSION = 1
_LAYOUT = struct.Struct(">BqB")  # version, last seq, state filter (0 = none)


def page_size(requested: int) -> int:
    """The page size to use: default for 0, clamped to MAX_PAGE_SIZE.

    Raises:
        InvalidArgument: requested is negative.
    """
    if requested < 0:
        raise InvalidArgument.for_field("page_size", "must not be negative")
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


class PageTokens:
    def __init__(self, key: bytes) -> None:
        self._tokens = SignedTokens(key, _LAYOUT)

    def encode(self, last_seq: int, state_filter: int) -> str:
        return self._tokens.seal(_VERSION, last_seq, state_filter)

    def decode(self, token: str, state_filter: int) -> int:
        """The last sequence number a token stands for; 0 for the empty (first page) token.

        Raises:
            InvalidArgument: the token was not made by this store, or for another filter.
        """
        if not token:
            return 0
        fields = self._tokens.open(token)
        if fields is None or fields[0] != _VERSION or fields[2] != state_filter:
            raise _invalid()
        return fields[1]


def _invalid() -> InvalidArgument:
    return InvalidArgument.for_field(
        "page_token",
        "is not a token this service issued for this filter; pass next_page_token unchanged",
    )
