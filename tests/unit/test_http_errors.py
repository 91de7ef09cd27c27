"""How every service turns errors into HTTP: its domain table, then unavailability as 503."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from foodflow.platform.errors import ServiceUnavailable
from foodflow.platform.http.errors import install_error_handlers


class StoreDown(ServiceUnavailable):
    """What a store raises when its database stopped answering."""


class Missing(Exception):
    pass


def app_raising(error: Exception) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app, [(Missing, 404)])

    @app.get("/")
    async def fail() -> None:
        raise error

    return app


async def answer(error: Exception) -> httpx.Response:
    transport = httpx.ASGITransport(app=app_raising(error), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        return await client.get("/")


async def test_a_dependency_that_gave_up_is_a_503_to_retry_not_a_500() -> None:
    got = await answer(StoreDown("order state read: PostgreSQL is unavailable (refused)"))
    assert got.status_code == 503
    assert got.json() == {
        "detail": "a dependency is not reachable, retry later",
        "error": "Unavailable",
    }


async def test_domain_errors_keep_their_status() -> None:
    got = await answer(Missing("no such order"))
    assert (got.status_code, got.json()["detail"]) == (404, "no such order")
