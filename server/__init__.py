"""The checkpoint metadata gRPC server."""

from __future__ import annotations

from server.app import RunningServer, create_server

__all__ = ["RunningServer", "create_server"]
