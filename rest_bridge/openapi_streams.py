"""How OpenAPI describes a server-streaming route: SSE and NDJSON, each message's schema.

OpenAPI 3.1 has no schema for one item of a stream, so each media type's schema describes one
item (an SSE event's `data`, an NDJSON line) with a description saying so; `x-stream-item`
repeats it under a name tools can look for. An item is `{"data": <message>}` or, last, the error
envelope. The request headers a stream reads (Accept, Last-Event-ID) are documented parameters.
"""

from __future__ import annotations

from typing import Any

from rest_bridge.routes import Route
from rest_bridge.status import REQUEST_ID
from rest_bridge.streaming import NDJSON_TYPE, RESUME_FIELD, SSE_TYPE, TYPE_FIELD


def stream_response(route: Route, data: dict[str, Any], error_ref: str) -> dict[str, Any]:
    """The 200 response of a streaming route whose messages have the schema data."""
    item = {
        "oneOf": [
            {"type": "object", "required": ["data"], "properties": {"data": data}},
            {"$ref": error_ref},
        ]
    }
    fields = route.rpc.output_type.fields_by_name
    sse_lines = ["`data:` one item"]
    if RESUME_FIELD in fields:
        sse_lines.insert(0, f"`id:` the message's `{RESUME_FIELD}`")
    if TYPE_FIELD in fields:
        sse_lines.insert(-1, f"`event:` its `{TYPE_FIELD}` (`error` for the last, failed one)")
    return {
        "description": (
            "A stream of messages, as Server-Sent Events when Accept is text/event-stream "
            f"(each event: {', '.join(sse_lines)}; comment lines are heartbeats), otherwise "
            'as NDJSON (one item per line). Each item is {"data": message}; an error after '
            "the first message is the last item, the error envelope."
        ),
        "headers": {REQUEST_ID.name: {"schema": {"type": "string"}}},
        "content": {
            SSE_TYPE: {
                "schema": {**item, "description": "The data of one event."},
                "x-stream-item": item,
            },
            NDJSON_TYPE: {"schema": {**item, "description": "One line."}, "x-stream-item": item},
        },
    }


def stream_parameters(route: Route) -> list[dict[str, Any]]:
    """The headers a streaming route reads."""
    parameters: list[dict[str, Any]] = [
        {
            "name": "Accept",
            "in": "header",
            "required": False,
            "description": f"{SSE_TYPE} for Server-Sent Events; otherwise {NDJSON_TYPE}.",
            "schema": {"type": "string"},
        }
    ]
    if RESUME_FIELD in route.rpc.input_type.fields_by_name:
        parameters.append(
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "description": f"Sent by EventSource on a reconnect; becomes {RESUME_FIELD}.",
                "schema": {"type": "string"},
            }
        )
    return parameters
