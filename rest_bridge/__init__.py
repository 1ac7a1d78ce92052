"""The REST/JSON bridge: routes derived from google.api.http rules, calls forwarded over gRPC."""

from __future__ import annotations

from rest_bridge.app import create_app

__all__ = ["create_app"]
