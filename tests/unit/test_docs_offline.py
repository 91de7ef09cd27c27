"""Every service's `/docs` works without internet: the page names no other host, and every asset
it names is served by the service itself. The problems every route may answer are documented."""

from __future__ import annotations

import importlib
import re

import httpx
import pytest

from foodflow.contracts.errors import PROBLEM_JSON
from foodflow.platform.config import Settings

SERVICES = [
    "inventory_service",
    "pricing_service",
    "payment_service",
    "delivery_service",
    "restaurant_service",
    "order_manager",
    "order_writer",
    "gateway",
]
SETTINGS = Settings()
# Any URL with a scheme or a host (`//cdn…`): the page must name only its own paths.
EXTERNAL = re.compile(r"""(?:https?:)?//[^\s"'<>]+""")
ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\s*:\s*["']([^"']+)["']""")


def client_of(service: str) -> httpx.AsyncClient:
    app = importlib.import_module(f"foodflow.{service}.app").create_app(SETTINGS)
    # No lifespan: the docs and the schema need no dependency.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")


@pytest.mark.parametrize("service", SERVICES)
async def test_docs_name_no_other_host_and_their_assets_are_served(service: str) -> None:
    async with client_of(service) as client:
        page = await client.get("/docs")
        assert page.status_code == 200 and "swagger-ui" in page.text
        assert EXTERNAL.findall(page.text) == []
        assets = {a or b for a, b in ASSET.findall(page.text)}
        assert {"/openapi.json"} < assets
        for asset in sorted(assets):
            answer = await client.get(asset)
            assert answer.status_code == 200, asset
            assert len(answer.content) > 100, asset
        script = await client.get("/docs/assets/swagger-ui-bundle.js")
        assert script.headers["content-type"].startswith(("application/javascript", "text/"))
        assert (await client.get("/redoc")).status_code == 404  # ReDoc needs a CDN: off


@pytest.mark.parametrize("service", SERVICES)
async def test_the_schema_documents_problem_details(service: str) -> None:
    async with client_of(service) as client:
        schema = (await client.get("/openapi.json")).json()
    problem = schema["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail"} <= set(problem["properties"])
    assert "FieldError" in schema["components"]["schemas"]
    # /ready's 503 is its own body (which checks failed), not a problem.
    operations = [
        op for path, ops in schema["paths"].items() if path != "/ready" for op in ops.values()
    ]
    assert operations
    for operation in operations:
        for code in ("422", "500", "503"):
            content = operation["responses"][code]["content"]
            assert set(content) == {PROBLEM_JSON}, (operation.get("operationId"), code)
            assert content[PROBLEM_JSON]["schema"] == {"$ref": "#/components/schemas/Problem"}
