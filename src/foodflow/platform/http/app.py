"""Every service's FastAPI app, built one way: `service_app(title, settings, lifespan=...)`.

What each service would otherwise repeat: the body-size limit (`limits`), problem details for
every error (`errors`), those problems documented in the OpenAPI schema, and `/docs` that works
without internet. FastAPI's own `/docs` loads Swagger UI from a CDN, a blank page on a machine
without one; here the assets come from the `swagger-ui-bundle-v2` package (Swagger UI 5.31.0,
Apache-2.0) and are served by the service itself under `/docs/assets/`. ReDoc (CDN only) is off.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Lifespan
from swagger_ui_bundle import swagger_ui_path

from foodflow.contracts.errors import ERROR_RESPONSES, Problem
from foodflow.platform.config import Settings
from foodflow.platform.http.errors import install_problem_details
from foodflow.platform.http.limits import install_body_limit

DOCS_PATH = "/docs"
DOCS_ASSETS = DOCS_PATH + "/assets"


def service_app(
    title: str, settings: Settings, *, lifespan: Lifespan[FastAPI], description: str = ""
) -> FastAPI:
    """A service's app: body limit, problem details, documented problems, offline `/docs`."""
    app = FastAPI(
        title=title,
        description=description,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        responses=ERROR_RESPONSES,
    )
    install_body_limit(app, settings)
    install_problem_details(app)
    install_offline_docs(app)
    _document_problems(app)
    return app


def install_offline_docs(app: FastAPI) -> None:
    """`/docs`: Swagger UI over `/openapi.json`, every asset served by `app` itself."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )


def _document_problems(app: FastAPI) -> None:
    """Add `Problem` (and what it refers to) to the schema's components: `ERROR_RESPONSES`
    refers to it by name, and no route returns it as its response model. A route that
    documents an error code in its own words (`responses={409: {"description": ...}}`) keeps
    them; the body is still a problem."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in problem.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components.setdefault("Problem", problem)
        problem_content = ERROR_RESPONSES[500]["content"]
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for code, response in operation.get("responses", {}).items():
                    if code[:1] in "45" and "content" not in response:
                        response["content"] = problem_content
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
