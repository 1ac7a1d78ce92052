"""Opaque tokens a client hands back unchanged: fixed-layout integers, HMAC-signed.

The key is kept in the store, so every replica accepts every other's tokens; the text is URL-safe
base64 without padding. Page tokens (server.paging) and resume tokens (server.resume_tokens) are
both this; each says what its fields mean and which values it refuses.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct

MAC_BYTES = 16


class SignedTokens:
    """Seals and opens tokens of one layout under one key."""

    def __init__(self, key: bytes, layout: struct.Struct) -> None:
        self._key, self._layout = key, layout

    def seal(self, *fields: int) -> str:
        payload = self._layout.pack(*fields)
        return base64.urlsafe_b64encode(payload + self._mac(payload)).decode().rstrip("=")

    def open(self, token: str) -> tuple[int, ...] | None:
        """The fields of a token sealed with this key and layout; None for anything else
        (not base64, truncated, padded, forged or signed with another key)."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        size = self._layout.size
        payload, mac = raw[:size], raw[size:]
        if len(raw) != size + MAC_BYTES or not hmac.compare_digest(mac, self._mac(payload)):
            return None
        return tuple(int(field) for field in self._layout.unpack(payload))

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:MAC_BYTES]
