"""/docs and its assets on the bridge app: local Swagger UI files, no CDN, GET only."""

from __future__ import annotations

import re

import pytest

from rest_bridge.docs_ui import ASSETS, PATHS
from rest_bridge.routes import RESERVED_PATHS
from tests.rest_bridge.upstream import Bridge

pytestmark = pytest.mark.anyio


async def test_docs_page_loads_only_the_bridges_own_assets(asgi_bridge: Bridge) -> None:
    """The page is HTML over /openapi.json and refers to no URL outside the bridge."""
    page = await asgi_bridge.client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "'/openapi.json'" in page.text
    urls = set(re.findall(r'(?:src|href)="([^"]+)"', page.text))
    assert urls == set(ASSETS)


@pytest.mark.parametrize(("path", "media_type"), [(p, m) for p, (_, m) in ASSETS.items()])
async def test_each_asset_is_served_from_the_package(
    asgi_bridge: Bridge, path: str, media_type: str
) -> None:
    """Every asset answers 200 with its media type and a non-trivial body."""
    answer = await asgi_bridge.client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(media_type)
    assert len(answer.content) > 500


async def test_docs_paths_are_reserved_and_get_only(asgi_bridge: Bridge) -> None:
    """The docs paths are the bridge's own (never transcoded): POST is the 405 envelope."""
    assert PATHS <= RESERVED_PATHS
    refused = await asgi_bridge.client.post("/docs")
    assert refused.status_code == 405
    assert refused.json()["error"]["code"] == "unimplemented"
