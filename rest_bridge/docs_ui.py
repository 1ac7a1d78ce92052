"""/docs: FastAPI's Swagger UI over the bridge's own /openapi.json, with no CDN.

Its script, stylesheet and icon are the Swagger UI dist files the `swagger-ui-bundle-v2`
package ships (Swagger UI 5, which renders OpenAPI 3.1), served by the bridge itself, so the
page works for clients without Internet access. "Authorize" uses the document's bearer scheme.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from swagger_ui_bundle import swagger_ui_path

DOCS_PATH = "/docs"
# Served path -> (file of the Swagger UI dist, media type).
ASSETS: dict[str, tuple[str, str]] = {
    f"{DOCS_PATH}/swagger-ui-bundle.js": ("swagger-ui-bundle.js", "text/javascript"),
    f"{DOCS_PATH}/swagger-ui.css": ("swagger-ui.css", "text/css"),
    f"{DOCS_PATH}/favicon-32x32.png": ("favicon-32x32.png", "image/png"),
}
PATHS = frozenset({DOCS_PATH, *ASSETS})
"""Every path of the docs UI: the bridge's own, never transcoded."""

_UI_PARAMETERS = {"persistAuthorization": False, "displayRequestDuration": True}


def install(app: FastAPI, openapi_url: str, title: str) -> None:
    """Add /docs and its assets (GET only) to the bridge's FastAPI shell."""
    html = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{title} - Swagger UI",
        swagger_js_url=f"{DOCS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_PATH}/favicon-32x32.png",
        swagger_ui_parameters=_UI_PARAMETERS,
    ).body
    dist = Path(str(swagger_ui_path))

    async def docs(request: Request) -> Response:
        return HTMLResponse(html)

    app.router.add_route(DOCS_PATH, docs, methods=["GET"])
    for path, (name, media_type) in ASSETS.items():
        app.router.add_route(path, _asset(dist / name, media_type), methods=["GET"])


def _asset(file: Path, media_type: str) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        return FileResponse(file, media_type=media_type)

    return serve
