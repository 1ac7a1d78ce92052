"""The bytes of every JSON body the bridge writes: `{"data": ...}` and the error envelope.

One encoder, so a success body from the transcoder, a probe's body and an error body can never
differ in spacing or escaping: compact separators, and UTF-8 text left as it is (not \\u
escapes), which is the same bytes as the default for ASCII-only values.

A success body whose type holds no float (rest_bridge.codec.Codec.float_free) is written by
orjson instead, at a tenth of json's cost (docs/decisions.md): for strings (every code point),
integers, booleans, null, objects and arrays its bytes are json's; only floats differ (json
writes 1e-05, orjson 1e-5), so those never reach it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

JSON_TYPE = "application/json"

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""What json.dumps(..., ensure_ascii=False, separators=(",", ":")) builds on every call."""
_ASCII_ENCODER = json.JSONEncoder(separators=(",", ":"))
"""For text UTF-8 cannot carry (an error message quoting a client's lone surrogate)."""


def dumps(value: Any) -> bytes:
    """A JSON value as compact UTF-8 bytes.

    Raises:
        TypeError: a value JSON cannot represent.
        ValueError: a circular reference.
    """
    text = _ENCODER.encode(value)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _ASCII_ENCODER.encode(value).encode()


def data_body(data: Any, float_free: bool = False) -> bytes:
    """The success envelope: `{"data": data}`; float_free says data holds no float."""
    if float_free:
        try:
            return orjson.dumps({"data": data})
        except TypeError:  # orjson.JSONEncodeError: a lone surrogate, an integer past 64 bits
            pass
    return dumps({"data": data})
