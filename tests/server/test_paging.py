"""Unit tests of server.paging: page sizes and signed, filter-bound page tokens."""

from __future__ import annotations

import base64

import pytest

from server.errors import InvalidArgument
from server.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PageTokens, page_size

KEY = b"k" * 32
READY = 2


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        pytest.param(0, DEFAULT_PAGE_SIZE, id="zero-is-default"),
        pytest.param(1, 1, id="one"),
        pytest.param(50, 50, id="fifty"),
        pytest.param(MAX_PAGE_SIZE, MAX_PAGE_SIZE, id="max"),
        pytest.param(MAX_PAGE_SIZE + 1, MAX_PAGE_SIZE, id="over-max-clamped"),
        pytest.param(2**31 - 1, MAX_PAGE_SIZE, id="int32-max-clamped"),
    ],
)
def test_page_size(requested: int, expected: int) -> None:
    """0 means the default (50); sizes over the maximum (1000) are clamped to it."""
    assert (DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE) == (50, 1000)
    assert page_size(requested) == expected


@pytest.mark.parametrize("requested", [pytest.param(-1, id="minus-one"), pytest.param(-(2**31))])
def test_page_size_negative_is_invalid(requested: int) -> None:
    """A negative page size is INVALID_ARGUMENT naming page_size."""
    with pytest.raises(InvalidArgument) as caught:
        page_size(requested)
    assert [v.field for v in caught.value.violations] == ["page_size"]


@pytest.mark.parametrize(
    ("last_seq", "state_filter"),
    [
        pytest.param(1, 0, id="first-no-filter"),
        pytest.param(12345, READY, id="with-filter"),
        pytest.param(2**63 - 1, 4, id="max-seq"),
    ],
)
def test_token_round_trip(last_seq: int, state_filter: int) -> None:
    """A token decodes to the sequence number it was made for, under the same filter."""
    pages = PageTokens(KEY)
    token = pages.encode(last_seq, state_filter)
    assert "=" not in token
    assert pages.decode(token, state_filter) == last_seq


def test_token_is_url_safe_and_opaque() -> None:
    """A token uses only URL-safe base64 characters."""
    token = PageTokens(KEY).encode(7, 0)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_empty_token_is_first_page() -> None:
    """The empty token stands for the first page under any filter."""
    pages = PageTokens(KEY)
    assert pages.decode("", 0) == 0
    assert pages.decode("", READY) == 0


def _flip_payload(token: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[5] ^= 0x01  # inside the sequence number
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


def _bad_tokens() -> list[object]:
    good = PageTokens(KEY).encode(10, 0)
    return [
        pytest.param(_flip_payload(good), 0, id="forged-payload"),
        pytest.param(good[:-4], 0, id="truncated"),
        pytest.param(good + "AAAA", 0, id="extended"),
        pytest.param(PageTokens(b"other" * 8).encode(10, 0), 0, id="other-key"),
        pytest.param(good, READY, id="other-filter"),
        pytest.param("not a token!", 0, id="not-base64"),
        pytest.param("A", 0, id="one-char"),
        pytest.param("\u00e9\u00e9\u00e9\u00e9", 0, id="non-ascii"),
    ]


@pytest.mark.parametrize(("token", "state_filter"), _bad_tokens())
def test_bad_token_is_invalid_argument(token: str, state_filter: int) -> None:
    """A forged, truncated, foreign-key or other-filter token is INVALID_ARGUMENT on page_token."""
    with pytest.raises(InvalidArgument) as caught:
        PageTokens(KEY).decode(token, state_filter)
    assert [v.field for v in caught.value.violations] == ["page_token"]
    assert "pass next_page_token unchanged" in caught.value.message
