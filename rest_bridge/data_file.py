"""A JSON file holding an array of messages in the REST `data` shape (the bridge's JSON mapping).

`checkpoint-server import` reads its file with this, so an import file is exactly what REST
clients send and receive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from google.protobuf.message import Message

from rest_bridge.codec import Codec, DecodeError

M = TypeVar("M", bound=Message)


def read_messages(path: Path, message_class: type[M], what: str) -> list[M]:
    """The entries of path, each decoded into a message_class; what names them in errors.

    Raises:
        DecodeError: the file cannot be read, is not a JSON array, or an entry does not fit
            (the message names the entry, e.g. "[3].state: ...").
    """
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DecodeError(f"cannot read {path}: {exc}") from exc
    if not isinstance(entries, list):
        raise DecodeError(f"{path}: expected a JSON array of {what}")
    codec = Codec()
    messages: list[M] = []
    for index, entry in enumerate(entries):
        message = message_class()
        codec.decode(entry, message, f"[{index}]")
        messages.append(message)
    return messages
