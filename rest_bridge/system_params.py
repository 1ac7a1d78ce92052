"""Google's system parameters (`$`-prefixed query parameters) that generated clients send.

Google's generated REST clients (GAPIC REST transports) add `$alt=json;enum-encoding=int` to
every call. The bridge honours `$alt` and nothing else: `json` is the normal answer, and
`json;enum-encoding=int` renders enums as their numbers in that answer. Any other `$name` is
refused like any other unknown query parameter (422), so a parameter the bridge would ignore
never looks honoured. The OpenAPI document lists ALT (rest_bridge.openapi_http).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rest_bridge.codec import DecodeError

ALT = "$alt"
ALT_VALUES: dict[str, bool] = {"json": False, "json;enum-encoding=int": True}
"""Each accepted $alt value -> whether enums render as numbers."""
PREFIX = "$"


@dataclass(frozen=True, slots=True)
class SystemParams:
    enums_as_numbers: bool = False


DEFAULT = SystemParams()


def split_system(
    query: Sequence[tuple[str, str]],
) -> tuple[SystemParams, Sequence[tuple[str, str]]]:
    """The system parameters of a query and the query without them.

    Raises:
        DecodeError: an unknown `$name`, a repeated `$alt`, or an `$alt` value not in ALT_VALUES.
    """
    if not any(name.startswith(PREFIX) for name, _ in query):
        return DEFAULT, query
    rest: list[tuple[str, str]] = []
    alt: list[str] = []
    for name, value in query:
        if not name.startswith(PREFIX):
            rest.append((name, value))
        elif name == ALT:
            alt.append(value)
        else:
            raise DecodeError(
                f"unknown query parameter {name!r}: the only system parameter is {ALT}", name
            )
    if len(alt) > 1:
        raise DecodeError(f"query parameter {ALT!r} is given more than once", ALT)
    numbers = ALT_VALUES.get(alt[0].replace(" ", "").lower())
    if numbers is None:
        raise DecodeError(
            f"query parameter {ALT!r} must be one of {', '.join(ALT_VALUES)}; got {alt[0][:50]!r}",
            ALT,
        )
    return SystemParams(enums_as_numbers=numbers), rest
