"""HPACK at less CPU for the bridge's HTTP/2: responses encoded without the dynamic table, each
header a cached byte string; Huffman decoding of requests cached.

hpack's Encoder searches its dynamic table, Huffman-codes every new value in Python and indexes
values that never repeat (x-request-id, etag); that was ~10 % of an h2c request's CPU. This
encoder never adds to the dynamic table, so a header's encoding depends on the header alone: a
full match in the static table is one index byte, anything else a literal "without indexing"
(RFC 7541 section 6.2.2; the name indexed when the static table has it), its value sent raw.
The bytes of headers that repeat (status, content type, length, date) are kept, shared by all
connections, so encoding them again is a dict lookup. Header blocks are some bytes larger than
Huffman-coded, indexed ones. Requests keep hpack's decoder (and the peer's dynamic table), but
hpack Huffman-decodes each literal in Python (~15 % of a request), and clients send some
literals alike on every request without indexing them (nghttp2, so curl and h2load, never index
`authorization`): decoding is a pure function of the bytes, so a bounded cache of it is safe.
Whole header blocks repeat too: once a client has indexed its headers, each request on the
connection is the same few index bytes. A block that leaves the dynamic table as it was decodes
to the same list for as long as the table (and the decoder's limits) stay the same, so each
connection keeps the last few such blocks' lists (RepeatDecoder), dropped when the table changes
(small lists of short blocks only: a few KiB per connection at most).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import hpack.hpack
from hpack import Decoder, HeaderTuple
from hpack.hpack import encode_integer
from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

_STATIC = HeaderTable.STATIC_TABLE
_FULL = {pair: index for index, pair in reversed(list(enumerate(_STATIC, 1)))}
"""(name, value) -> its static-table index (the first when a pair repeats)."""
_NAMES = {name: index for index, (name, _) in reversed(list(enumerate(_STATIC, 1)))}
"""name -> the first static-table index with that name."""
_NAME_FIELDS = {
    name: bytes((index,)) if index < 0x0F else bytes(encode_integer(index, 4))
    for name, index in _NAMES.items()
}
"""name -> the start of a literal field without indexing naming it by that index (the index in
a 4-bit prefix, RFC 7541 section 6.2.2), made once rather than per header."""
_KEPT = frozenset(
    {
        b":status",
        b"content-type",
        b"content-length",
        b"content-encoding",
        b"date",
        b"vary",
        b"cache-control",
        b"allow",
        b"retry-after",
    }
)
"""Names whose values repeat from response to response: their encodings are kept."""
KEPT_MAX = 4096
"""Encodings kept at most (then the cache starts over)."""
_kept: dict[tuple[bytes, bytes], bytes] = {}
"""The encodings of headers named in _KEPT, shared by every connection (they are stateless)."""
_TABLE_SIZE_ZERO = b"\x20"
"""A dynamic table size update to 0 (RFC 7541 section 6.3)."""


def _string(data: bytes) -> bytes:
    size = len(data)
    if size < 0x7F:  # the length fits the 7-bit prefix: one byte
        return bytes((size,)) + data
    return bytes(encode_integer(size, 7)) + data


def encode_header(name: bytes, value: bytes) -> bytes:
    """One header as an HPACK field that leaves the dynamic table alone."""
    index = _FULL.get((name, value))
    if index is not None:
        indexed = encode_integer(index, 7)
        indexed[0] |= 0x80
        return bytes(indexed)
    start = _NAME_FIELDS.get(name)
    if start is None:  # a name of its own, sent as a literal too
        start = b"\x00" + _string(name)
    return start + _string(value)


class ResponseEncoder:
    """Stands in for hpack.Encoder in h2.H2Connection (its `encode` and `header_table_size`)."""

    def __init__(self) -> None:
        self._table_size = 4096
        self._prefix = b""
        """A table size update owed at the start of the next block."""

    @property
    def header_table_size(self) -> int:
        return self._table_size

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        # The peer changed SETTINGS_HEADER_TABLE_SIZE: acknowledge it with a size update, to 0,
        # which fits any limit (this encoder never uses the table).
        self._table_size = value
        self._prefix = _TABLE_SIZE_ZERO

    def encode(self, headers: Iterable[tuple[bytes, bytes]], huffman: bool = True) -> bytes:
        """The header block of headers (huffman is accepted for h2's call and not used)."""
        parts = [self._prefix]
        self._prefix = b""
        kept = _kept
        for header in headers:
            name, value = header[0], header[1]
            encoded = kept.get((name, value))
            if encoded is None:
                encoded = encode_header(name, value)
                if name in _KEPT:
                    if len(kept) >= KEPT_MAX:
                        kept.clear()
                    kept[name, value] = encoded
            parts.append(encoded)
        return b"".join(parts)


_decode_cached = functools.lru_cache(maxsize=1024)(decode_huffman)
CACHED_MAX = 512
"""Longest Huffman string kept: a token or a path fits, and clients that send 1024 distinct
16 KiB values cannot make the cache hold more than about 1 MiB."""


def _decode_huffman_cached(huffman_string: bytes | bytearray | memoryview | None) -> bytes:
    if type(huffman_string) is bytes and len(huffman_string) <= CACHED_MAX:
        return _decode_cached(huffman_string)
    return decode_huffman(huffman_string)


def cache_huffman_decoding() -> None:
    """Make hpack's decoder (every one in the process) decode Huffman strings through a cache of
    the last 1024 distinct ones of at most CACHED_MAX bytes."""
    # hpack.hpack calls its module-level name, imported from hpack.huffman_table (not exported).
    hpack.hpack.decode_huffman = _decode_huffman_cached  # type: ignore[attr-defined]


class _CountedTable(HeaderTable):
    """hpack's dynamic table, counting its changes (an entry added, the size changed)."""

    def __init__(self) -> None:
        super().__init__()
        self.changes = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.changes += 1
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        self.changes += 1
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]  # the base setter


REPEATS_KEPT = 4
"""Header blocks whose decoded lists a connection keeps."""
REPEAT_MAX = 2048
"""Longest block kept (a request's usual block is some tens of bytes once indexed, a long
bearer token adds its length)."""
REPEAT_HEADERS = 64
"""Most headers in a kept list: a short block of index bytes can name thousands of table
entries, and a kept list must stay small (at most some KiB per connection)."""


class RepeatDecoder(Decoder):
    """hpack's Decoder, answering a block seen again under the same table from its last
    decoding (see the module docstring); everything else is hpack's."""

    def __init__(self) -> None:
        super().__init__()
        self.header_table = _CountedTable()
        self._seen: dict[tuple[bytes, bool], list[HeaderTuple]] = {}
        self._stamp: tuple[int, int, int] = (-1, 0, 0)

    def decode(self, data: bytes, raw: bool = False) -> list[HeaderTuple]:
        table = self.header_table
        if not isinstance(table, _CountedTable) or len(data) > REPEAT_MAX:
            return list(super().decode(data, raw))
        stamp = (table.changes, self.max_header_list_size, self.max_allowed_table_size)
        if stamp != self._stamp:
            self._seen.clear()
            self._stamp = stamp
        key = (bytes(data), raw)
        headers = self._seen.get(key)
        if headers is not None:
            return headers
        headers = list(super().decode(data, raw))
        if table.changes == stamp[0] and len(headers) <= REPEAT_HEADERS:
            if len(self._seen) >= REPEATS_KEPT:
                self._seen.clear()
            self._seen[key] = headers
        return headers
