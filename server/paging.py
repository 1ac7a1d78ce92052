"""Opaque, signed page tokens for ListCheckpoints (AIP-158).

A token holds the last sequence number served and the filter it was served under, signed with a
key kept in the store (so every replica accepts every other's tokens). A forged, truncated or
foreign token, or one reused with another filter, is INVALID_ARGUMENT.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct

from server.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

_VERSION = 1
_LAYOUT = struct.Struct(">BqB")  # version, last seq, state filter (0 = none)
_MAC_BYTES = 16


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
        self._key = key

    def encode(self, last_seq: int, state_filter: int) -> str:
        payload = _LAYOUT.pack(_VERSION, last_seq, state_filter)
        return base64.urlsafe_b64encode(payload + self._mac(payload)).decode().rstrip("=")

    def decode(self, token: str, state_filter: int) -> int:
        """The last sequence number a token stands for; 0 for the empty (first page) token.

        Raises:
            InvalidArgument: the token was not made by this store, or for another filter.
        """
        if not token:
            return 0
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError) as exc:
            raise _invalid() from exc
        payload, mac = raw[: _LAYOUT.size], raw[_LAYOUT.size :]
        if len(raw) != _LAYOUT.size + _MAC_BYTES or not hmac.compare_digest(
            mac, self._mac(payload)
        ):
            raise _invalid()
        version, last_seq, token_filter = _LAYOUT.unpack(payload)
        if version != _VERSION or token_filter != state_filter:
            raise _invalid()
        return int(last_seq)

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]


def _invalid() -> InvalidArgument:
    return InvalidArgument.for_field(
        "page_token",
        "is not a token this service issued for this filter; pass next_page_token unchanged",
    )
