"""/docs in a real browser: Swagger UI from the bridge's own assets, every operation, Authorize.

Headless Chromium loads /docs from each REST door (the separate bridge and `serve
--rest-listen`), and the page must render every operation of the live /openapi.json, fetch
nothing but the door itself (no CDN), and call the API with the token given to "Authorize".
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e import bearer
from tests.e2e.devtools import Browser, Page, chromium
from tests.e2e.doors import Doors

DOORS = ["bridge", "inprocess"]
NAME = "docs-ui-example"
DEBOUNCE = 1.0
"""Seconds Swagger UI takes to accept typed parameter values (it debounces its inputs)."""

# React owns the inputs: a value is set through the native setter, then announced.
_TYPE = """
(selector, text) => {
  const input = document.querySelector(selector);
  const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
  setter.call(input, text);
  input.dispatchEvent(new Event('input', {bubbles: true}));
  return true;
}
"""


@pytest.fixture(scope="module")
def doors(rest_doors: Doors) -> Doors:
    """Both REST doors, with one checkpoint to look at."""
    created = httpx.post(
        f"{rest_doors.bridge}/v1/checkpoints",
        json={
            "display_name": NAME,
            "resources": {"limits": {"memory_mib": 64}, "requests": {"memory_mib": 32, "vcpus": 1}},
        },
        headers=bearer(rest_doors.writer),
        timeout=10.0,
    )
    assert created.status_code in (200, 409), created.text
    return rest_doors


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """One headless Chromium for the module; each test opens its own page."""
    with chromium(tmp_path_factory.mktemp("chromium")) as started:
        yield started


def _click(page: Page, selector: str) -> None:
    page.wait_for(f"!!document.querySelector({json.dumps(selector)})")
    page.evaluate(f"document.querySelector({json.dumps(selector)}).click()")


def _type(page: Page, selector: str, text: str) -> None:
    page.wait_for(f"!!document.querySelector({json.dumps(selector)})")
    page.evaluate(f"({_TYPE})({json.dumps(selector)}, {json.dumps(text)})")


@pytest.mark.parametrize("door", DOORS)
def test_docs_render_every_operation_from_local_assets(
    doors: Doors, browser: Browser, door: str
) -> None:
    """Every operationId and path of /openapi.json is rendered, and the page loaded nothing
    from anywhere but the door."""
    base = doors.urls[door]
    document = httpx.get(f"{base}/openapi.json", timeout=10.0).json()
    expected = {
        (method.upper(), path, op["operationId"])
        for path, ops in document["paths"].items()
        for method, op in ops.items()
    }
    with browser.page() as page:
        page.goto(f"{base}/docs")
        page.wait_for(f"document.querySelectorAll('.opblock').length >= {len(expected)}")
        rendered = page.evaluate(
            """[...document.querySelectorAll('.opblock')].map(b => [
                b.querySelector('.opblock-summary-method').textContent,
                b.querySelector('.opblock-summary-path').getAttribute('data-path'),
                b.id])"""
        )
        resources = page.evaluate(
            "performance.getEntriesByType('resource').map(e => e.name).concat([location.href])"
        )
    found = {(method, path) for method, path, _ in rendered}
    assert found == {(method, path) for method, path, _ in expected}
    ids = " ".join(block_id for *_, block_id in rendered)
    assert all(f"-{operation_id}" in ids for *_, operation_id in expected)
    assert all(url.startswith(f"{base}/") for url in resources), resources
    assert f"{base}/docs/swagger-ui-bundle.js" in resources


@pytest.mark.parametrize("door", DOORS)
def test_authorize_sends_the_bearer_token(doors: Doors, browser: Browser, door: str) -> None:
    """A token entered in "Authorize" is sent by "Try it out": GetCheckpoint answers 200 with
    the checkpoint, where the same call without it is 401."""
    base = doors.urls[door]
    operation = "#operations-CheckpointService-CheckpointService_GetCheckpoint"
    with browser.page() as page:
        page.goto(f"{base}/docs")
        _click(page, "button.authorize")
        _type(page, ".auth-container input", doors.both)
        _click(page, ".auth-container button.authorize")
        _click(page, "button.btn-done")
        _click(page, f"{operation} .opblock-summary-control")
        _click(page, f"{operation} .try-out__btn")
        _type(page, f"{operation} input[placeholder='checkpoint_id']", NAME)
        time.sleep(DEBOUNCE)
        _click(page, f"{operation} .execute")
        live = f"{operation} .live-responses-table"
        status = page.wait_for(
            f"document.querySelector('{live} tr.response .response-col_status')?.textContent"
        )
        body = page.evaluate(f"document.querySelector('{live} .microlight')?.textContent")
    assert status.strip().startswith("200"), status
    assert json.loads(body)["data"]["display_name"] == NAME
    unauthorized = httpx.get(f"{base}/v1/checkpoints/{NAME}", timeout=10.0)
    assert unauthorized.status_code == 401
