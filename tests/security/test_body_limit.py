"""Every service refuses a request body over its limit with 413 before reading it whole (issue
12, finding 5); the batch endpoints have the larger limit a 500-item batch needs. No server."""

from __future__ import annotations

import importlib
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.types import Message

from foodflow.platform.config import Settings
from foodflow.platform.http.errors import install_problem_details
from foodflow.platform.http.limits import install_body_limit

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
JSON = {"content-type": "application/json"}


@pytest.mark.parametrize("service", SERVICES)
async def test_every_service_answers_413_over_the_limit(service: str) -> None:
    app = importlib.import_module(f"foodflow.{service}.app").create_app(SETTINGS)
    transport = httpx.ASGITransport(app=app)  # no lifespan: refused before any route runs
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        answer = await client.post(
            "/reserve", content=b"x" * (SETTINGS.max_body_bytes + 1), headers=JSON
        )
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == f"request body larger than {SETTINGS.max_body_bytes} bytes"
    assert answer.json()["status"] == 413 and answer.json()["type"] == "about:blank"


def echo_app(settings: Settings) -> FastAPI:
    app = FastAPI()
    install_body_limit(app, settings)
    install_problem_details(app)

    @app.post("/reserve")
    @app.post("/reserve_batch")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.post("/items")
    async def items(body: dict[str, Any]) -> dict[str, int]:
        return {"keys": len(body)}

    return app


async def test_batch_endpoints_take_a_batch_and_no_more() -> None:
    app = echo_app(SETTINGS)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as c:
        batch = b"x" * (SETTINGS.max_body_bytes * 4)
        assert (await c.post("/reserve_batch", content=batch)).json() == {"bytes": len(batch)}
        assert (await c.post("/reserve", content=batch)).status_code == 413
        too_big = b"x" * (SETTINGS.max_batch_body_bytes + 1)
        assert (await c.post("/reserve_batch", content=too_big)).status_code == 413


async def _send_chunked(app: FastAPI, path: str, chunks: int, size: int) -> tuple[int, int]:
    """POST `chunks` chunks of `size` bytes with no Content-Length; (status, chunks read)."""
    read = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal read
        read += 1
        return {"type": "http.request", "body": b"x" * size, "more_body": read < chunks}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"x"), (b"transfer-encoding", b"chunked")],
        "client": ("198.18.0.1", 1),
        "server": ("x", 80),
        "app": app,
    }
    await app(scope, receive, send)
    return sent[0]["status"], read


async def test_a_chunked_body_is_cut_off_at_the_limit() -> None:
    app = echo_app(SETTINGS)
    chunk = 16 * 1024
    status, read = await _send_chunked(app, "/reserve", chunks=640, size=chunk)  # 10 MiB
    assert status == 413
    assert read * chunk <= SETTINGS.max_body_bytes + chunk
    status, _ = await _send_chunked(app, "/items", chunks=640, size=chunk)  # a parsed body
    assert status == 413
    assert await _send_chunked(app, "/reserve", chunks=2, size=chunk) == (200, 2)


async def test_a_refusal_echoing_infinity_or_a_surrogate_stays_422() -> None:
    app = echo_app(SETTINGS)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as c:
        for raw in (b"[1e999]", b'["\\ud800"]', b"[NaN]"):
            answer = await c.post("/items", content=raw, headers=JSON)
            assert answer.status_code == 422, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
