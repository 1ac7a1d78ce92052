"""Idempotency-Key (IETF httpapi draft) on POST, carried as the request's AIP-155 `request_id`.

Generic: any POST whose request message has a singular string field `request_id` takes the
header; the gRPC server does the rest (stores the key, replays, refuses reuse). The header may
be any client string, so it is mapped to the UUID the field holds: a key that is a UUID is
passed as is (lowercase), so a REST client and a gRPC client using one UUID name one request;
any other key becomes its UUID5 in a namespace of the bridge's own. The server marks a replayed
answer with the trailing metadata `idempotent-replayed: true`, which becomes the response
header `Idempotent-Replayed: true`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from rest_bridge.codec import DecodeError
from rest_bridge.routes import Route

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
REPLAYED_METADATA = "idempotent-replayed"
FIELD = "request_id"
MAX_KEY_LENGTH = 255

_NAMESPACE = uuid.UUID("20be14fc-8556-42bd-9d8a-577ddfe36fd3")
"""The UUID5 namespace of keys that are not UUIDs; fixed forever (changing it forgets keys)."""
_KEY = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
_QUOTED = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_ESCAPE = re.compile(r'\\(["\\])')
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_INVALID = (
    f"{HEADER} must be 1-{MAX_KEY_LENGTH} printable ASCII characters, without leading or "
    'trailing spaces, bare or as a quoted string ("...")'
)


def keyed_field(route: Route) -> FieldDescriptor | None:
    """The request_id field an Idempotency-Key fills on this route, or None (not a keyed POST)."""
    if route.http_method != "POST":
        return None
    fld = route.rpc.input_type.fields_by_name.get(FIELD)
    if fld is None or fld.type != FieldDescriptor.TYPE_STRING or fld.is_repeated:
        return None
    return fld


def request_id_of(header: str) -> str:
    """The request_id an Idempotency-Key value names.

    Raises:
        DecodeError: the value is empty, too long, not printable ASCII, or a broken quoted string.
    """
    key = header
    if header.startswith('"'):
        quoted = _QUOTED.fullmatch(header)
        if quoted is None:
            raise DecodeError(_INVALID, HEADER)
        key = _ESCAPE.sub(r"\1", quoted.group(1))
    if len(key) > MAX_KEY_LENGTH or not _KEY.fullmatch(key):
        raise DecodeError(_INVALID, HEADER)
    if _UUID.fullmatch(key):
        return key.lower()
    return str(uuid.uuid5(_NAMESPACE, key))


def apply_key(route: Route, message: Message, headers: list[str]) -> bool:
    """Fill the request_id of a keyed POST from its Idempotency-Key header; whether the route is
    keyed (so its answer may be a replay). On other routes the header is ignored.

    Raises:
        DecodeError: the key is invalid, sent twice, or differs from a `request_id` the request
            already has (from the query string or a `body: "*"` body).
    """
    fld = keyed_field(route)
    if fld is None:
        return False
    if not headers:
        return True
    if len(headers) > 1:
        raise DecodeError(f"send one {HEADER} header, not {len(headers)}", HEADER)
    request_id = request_id_of(headers[0])
    given = getattr(message, fld.name)
    if given and given != request_id:
        raise DecodeError(
            f"{HEADER} and the request's {fld.name} name different requests; send one",
            HEADER,
        )
    setattr(message, fld.name, request_id)
    return True


def document(route: Route, operation: dict[str, Any]) -> None:
    """Describe the header and the replay marker on a keyed POST's OpenAPI operation."""
    if keyed_field(route) is None:
        return
    operation["parameters"].append(
        {
            "name": HEADER,
            "in": "header",
            "required": False,
            "description": (
                "Makes the create idempotent (IETF httpapi Idempotency-Key): for 24 hours, a "
                "retry by the same token with the same key and body creates nothing and answers "
                f"the original status and body with `{REPLAYED_HEADER}: true`; the same key with "
                "another body is 422; a retry while the first call runs is 409 (`aborted`). "
                f"1-{MAX_KEY_LENGTH} printable ASCII characters, bare or as a quoted string; a "
                f"UUID key is the request's `{FIELD}`."
            ),
            "schema": {"type": "string", "minLength": 1},
        }
    )
    operation["responses"]["200"]["headers"][REPLAYED_HEADER] = {
        "description": "`true` when this is the stored answer of an earlier call with the same "
        f"{HEADER}; absent otherwise.",
        "schema": {"type": "string", "enum": ["true"]},
    }


def replayed(trailing_metadata: Iterable[tuple[str, Any]] | None) -> bool:
    """Whether the server marked the answer as a replay of an earlier call's."""
    return any(k == REPLAYED_METADATA and str(v) == "true" for k, v in (trailing_metadata or ()))
