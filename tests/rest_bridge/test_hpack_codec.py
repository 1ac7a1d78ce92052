"""rest_bridge.hpack_codec: response header blocks that hpack's own decoder reads back exactly."""

from __future__ import annotations

import random

import pytest
from hpack import Decoder, Encoder, HPACKDecodingError, NeverIndexedHeaderTuple

from rest_bridge.hpack_codec import (
    RepeatDecoder,
    ResponseEncoder,
    cache_huffman_decoding,
    encode_header,
)

HEADERS = [
    (b":status", b"200"),
    (b":status", b"429"),
    (b"date", b"Tue, 01 Dec 2026 11:00:00 GMT"),
    (b"content-type", b"application/json"),
    (b"etag", b'W/"abc"'),
    (b"x-request-id", b"0123456789abcdef" * 2),
    (b"content-length", b"300"),
    (b"x-" + b"n" * 200, b"v" * 300),
]


def test_blocks_decode_to_the_same_headers_and_leave_the_table_empty() -> None:
    """Every header round-trips, again and again (kept encodings included), and the decoder's
    dynamic table stays empty: the blocks depend on nothing sent before."""
    encoder, decoder = ResponseEncoder(), Decoder()
    for _ in range(3):
        assert decoder.decode(encoder.encode(HEADERS), raw=True) == HEADERS
    assert len(decoder.header_table.dynamic_entries) == 0


def test_static_matches_are_one_byte_and_names_are_indexed() -> None:
    """:status 200 is the static table's index 8; content-type's name is index 31."""
    assert encode_header(b":status", b"200") == b"\x88"
    assert encode_header(b"content-type", b"x") == b"\x0f\x10\x01x"


def test_a_new_peer_table_size_is_acknowledged_once() -> None:
    """After the peer changes SETTINGS_HEADER_TABLE_SIZE, the next block starts with a size
    update to 0 (within any limit), the one after does not."""
    encoder, decoder = ResponseEncoder(), Decoder()
    encoder.header_table_size = 0
    decoder.max_allowed_table_size = 0
    first = encoder.encode(HEADERS[:1])
    assert first[:1] == b"\x20"
    assert decoder.decode(first, raw=True) == HEADERS[:1]
    assert encoder.encode(HEADERS[:1]) == b"\x88"


def test_cached_huffman_decoding_reads_what_hpack_encodes() -> None:
    """With the cache installed, Huffman-coded never-indexed literals (as curl sends a bearer
    token) decode to the same headers, the first time and from the cache."""
    cache_huffman_decoding()
    token = (b"authorization", b"Bearer " + b"tok3n-" * 20)
    request = [(b":method", b"GET"), (b":path", b"/v1/x"), token]
    block = Encoder().encode([*request[:2], NeverIndexedHeaderTuple(*token)], huffman=True)
    decoder = Decoder()
    assert decoder.decode(block, raw=True) == request
    assert decoder.decode(block, raw=True) == request


def test_repeated_blocks_decode_as_hpack_decodes_them_while_the_table_changes() -> None:
    """RepeatDecoder and hpack's Decoder read the same stream of blocks (indexed repeats, new
    entries that evict old ones, never-indexed literals, table size updates) to the same lists:
    a kept list is never answered for a table it was not decoded under."""
    rng = random.Random(7)
    encoder, plain, repeating = Encoder(), Decoder(), RepeatDecoder()
    values = [b"a", b"bb", b"c" * 60]
    last: dict[bytes, object] = {}
    kept = 0
    for round_ in range(600):
        headers: list[tuple[bytes, bytes]] = [(b":method", b"GET")]
        headers.append((b":path", rng.choice(values)))
        if rng.random() < 0.5:
            headers.append((b"x-a", rng.choice(values)))
        headers.append(NeverIndexedHeaderTuple(b"authorization", rng.choice(values)))
        if round_ % 97 == 96:
            encoder.header_table_size = rng.choice([0, 100, 4096])
        block = encoder.encode(headers, huffman=rng.random() < 0.5)
        expected = plain.decode(block, raw=True)
        got = repeating.decode(block, raw=True)
        assert got == expected
        kept += got is last.get(block)
        last[block] = got
        assert list(repeating.header_table.dynamic_entries) == list(
            plain.header_table.dynamic_entries
        )
    assert kept > 10


def test_a_block_that_shrinks_the_table_drops_the_kept_lists() -> None:
    """An indexed reference decoded before a size update to 0 is not answered from the kept
    list afterwards: hpack's error (the entry is gone) is raised, as the plain decoder raises."""
    encoder, decoder = Encoder(), RepeatDecoder()
    first = encoder.encode([(b"x-k", b"v")])
    repeat = encoder.encode([(b"x-k", b"v")])
    assert decoder.decode(first, raw=True) == [(b"x-k", b"v")]
    assert decoder.decode(repeat, raw=True) == [(b"x-k", b"v")]
    assert decoder.decode(repeat, raw=True) == [(b"x-k", b"v")]
    assert (bytes(repeat), True) in decoder._seen
    decoder.decode(b"\x20\x3f\xe1\x1f", raw=True)  # size 0, then 4096 again: the table is empty
    with pytest.raises(HPACKDecodingError):
        decoder.decode(repeat, raw=True)


def test_a_short_block_naming_many_entries_is_not_kept() -> None:
    """A block of 200 one-byte references (200 headers) decodes, again, but is not kept: what a
    connection keeps stays small whatever the client sends."""
    encoder, decoder = Encoder(), RepeatDecoder()
    decoder.decode(encoder.encode([(b"x-k", b"v")]), raw=True)
    block = b"\xbe" * 200  # index 62: the first dynamic entry, x-k: v
    assert decoder.decode(block, raw=True) == [(b"x-k", b"v")] * 200
    assert decoder.decode(block, raw=True) == [(b"x-k", b"v")] * 200
    assert (block, True) not in decoder._seen
