"""The OpenAPI document's HTTP-level parts: HEAD, ETag and preconditions, `$alt`.

Derived from the same data the bridge acts on: each route's etag plan (rest_bridge.conditional)
says which operations carry an ETag and take If-Match / If-None-Match, system_params.ALT_VALUES
lists the `$alt` values, and every GET gets its HEAD twin (rest_bridge.head).
"""

from __future__ import annotations

import copy
from typing import Any

from rest_bridge.conditional import READ_METHODS, plan_for
from rest_bridge.routes import Route
from rest_bridge.status import REQUEST_ID
from rest_bridge.system_params import ALT, ALT_VALUES

ETAG = {"description": 'The resource\'s etag as a strong entity tag ("v3").'}
_STRING = {"type": "string"}
ALT_PARAMETER: dict[str, Any] = {
    "name": ALT,
    "in": "query",
    "required": False,
    "description": "System parameter of Google's generated clients: json (the default), or "
    "json;enum-encoding=int to render enums as numbers in this answer. No other $ parameter "
    "is accepted.",
    "schema": {"type": "string", "enum": list(ALT_VALUES)},
}
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "Entity tags (W/ allowed) or *: 304 without a body when one matches.",
    "schema": _STRING,
}
IF_MATCH_READ = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": "One or more strong entity tags, or *: 412 unless one matches.",
    "schema": _STRING,
}
IF_MATCH_WRITE = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": 'One strong entity tag ("v3") or *: the write is refused with 412 unless '
    "the resource's current etag matches, checked in the write's own transaction; * matches "
    "any existing resource (a missing one is 404).",
    "schema": _STRING,
}


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": dict(_STRING)}


def add_http_semantics(operation: dict[str, Any], route: Route) -> None:
    """Add `$alt`, and where the route's etag plan applies ETag, the preconditions, 304 and 412."""
    plan = plan_for(route)
    parameters: list[dict[str, Any]] = operation["parameters"]
    parameters.append(dict(ALT_PARAMETER))
    responses: dict[str, Any] = operation["responses"]
    error = copy.deepcopy(responses.get("422") or {})
    if plan.resource:
        responses["200"]["headers"]["ETag"] = _header(ETAG["description"])
    if route.http_method in READ_METHODS and plan.resource:
        parameters += [dict(IF_NONE_MATCH), dict(IF_MATCH_READ)]
        responses["304"] = {
            "description": "Not modified: If-None-Match matched the current etag (no body).",
            "headers": {
                "ETag": _header(ETAG["description"]),
                REQUEST_ID.name: _header(REQUEST_ID.description),
            },
        }
    elif plan.request_path:
        parameters.append(dict(IF_MATCH_WRITE))
    else:
        _sort(responses)
        return
    error["description"] = "Precondition failed: If-Match does not match the current etag"
    responses["412"] = error
    _sort(responses)


def _sort(responses: dict[str, Any]) -> None:
    ordered = sorted(responses.items(), key=lambda kv: (kv[0] == "default", kv[0]))
    responses.clear()
    responses.update(ordered)


def add_head_operations(paths: dict[str, Any]) -> None:
    """A HEAD operation beside every GET: the same parameters and statuses, no bodies."""
    for item in paths.values():
        get = item.get("get")
        if get is None:
            continue
        head = copy.deepcopy(get)
        head["operationId"] = f"{get['operationId']}_Head"
        head["summary"] = f"HEAD of {get['operationId']}: the GET's status and headers, no body."
        for response in head["responses"].values():
            response.pop("content", None)
        item["head"] = head
