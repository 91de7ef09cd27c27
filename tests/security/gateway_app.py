"""The gateway in-process for the security tests: its app with its lifespan over the real
PostgreSQL, Redis and Kafka, a service it calls under uvicorn on a port the OS picks (never a
shared service port), and users of each role."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from foodflow.gateway.app import create_app
from foodflow.gateway.security import hash_password
from foodflow.platform.config import Settings

Headers = dict[str, str]
PASSWORD = "a staff password for tests"


def with_demo_operator(settings: Settings) -> Settings:
    """The suite's settings; a random demo operator password when the suite has none (with
    the generated one, a gateway already running keeps the same demo operator)."""
    if settings.demo_operator_password is not None:
        return settings
    return settings.model_copy(
        update={"demo_operator_password": SecretStr(secrets.token_urlsafe(32))}
    )


@contextlib.asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The gateway app, started (migrations, demo accounts, clients), and a client of it.

    Every request of these tests comes from one address and they log in often: the limits per
    address are raised (throttling has its own tests, from addresses of their own)."""
    app = create_app(
        settings.model_copy(
            update={
                "login_attempts_per_address_per_minute": 10_000,
                "signups_per_address_per_minute": 10_000,
            }
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=30) as client,
    ):
        yield app, client


async def log_in(client: httpx.AsyncClient, email: str, password: str) -> Headers:
    answer = await client.post("/auth/login", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def user_of_role(
    client: httpx.AsyncClient, db: asyncpg.Connection, role: str, courier_id: str | None = None
) -> Headers:
    """A new user of `role`, stored directly (sign-up only makes customers); its bearer header."""
    email = f"{role}-{uuid.uuid4().hex[:12]}@example.com"
    await db.execute(
        "INSERT INTO users (user_id, email, name, password_hash, role, courier_id)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        uuid.uuid4(),
        email,
        role,
        hash_password(PASSWORD),
        role,
        courier_id,
    )
    return await log_in(client, email, PASSWORD)


async def first_chunk(
    app: FastAPI, path: str, headers: Headers, timeout: float = 15.0
) -> tuple[int, bytes]:
    """Status and first body chunk of a response that may never end (an event stream): the
    ASGI app is called directly and the client leaves once that much has arrived."""
    start: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    body: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    leave = asyncio.Event()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("gateway", 80),
    }
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await leave.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start" and not start.done():
            start.set_result(message["status"])
        elif message["type"] == "http.response.body" and message.get("body") and not body.done():
            body.set_result(message["body"])

    task = asyncio.create_task(app(scope, receive, send))
    try:
        status = await asyncio.wait_for(start, timeout)
        return status, await asyncio.wait_for(body, timeout)
    finally:
        leave.set()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, 5)
