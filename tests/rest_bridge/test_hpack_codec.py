"""rest_bridge.hpack_codec: response header blocks that hpack's own decoder reads back exactly."""

from __future__ import annotations

from hpack import Decoder, Encoder, NeverIndexedHeaderTuple

from rest_bridge.hpack_codec import ResponseEncoder, cache_huffman_decoding, encode_header

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
