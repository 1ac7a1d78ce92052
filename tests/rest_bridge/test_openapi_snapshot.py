"""The generated OpenAPI document is pinned: any change to it shows up as a reviewed diff.

After an intended change (a proto comment, a new rule, a new error response), regenerate it:
    UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/rest_bridge/test_openapi_snapshot.py
and commit the snapshot with the change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from rest_bridge.descriptor_set import default_descriptor_set, load_schema
from rest_bridge.openapi import build_openapi
from rest_bridge.routes import build_routes

SNAPSHOT = Path(__file__).parent / "openapi.snapshot.json"


def test_openapi_document_matches_the_snapshot() -> None:
    """The OpenAPI document built from the shipped descriptors equals the committed snapshot."""
    schema = load_schema(default_descriptor_set())
    document = json.dumps(build_openapi(schema, build_routes(schema)), indent=2, sort_keys=True)
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(document + "\n", encoding="utf-8")
    assert SNAPSHOT.read_text(encoding="utf-8") == document + "\n"
