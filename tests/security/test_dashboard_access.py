"""Finding 2: the dashboard was open to the world, and its test-order form placed orders in any
user's name. Every /dashboard/ route now answers 401 without a token, 403 to customers and
couriers, 200 to operators (and admins); test orders are the demo customer's, always.

The gateway runs in-process over the real PostgreSQL, Redis and Kafka, and calls a real
inventory service (under uvicorn, on a free port); the delivery service is left unreachable,
which the courier panel reports with a 200.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from foodflow.contracts.orders import ValidatedOrder
from foodflow.inventory_service.app import create_app as create_inventory_app
from foodflow.platform.config import Settings
from foodflow.tools.secrets import load_settings
from tests.served import served

from .gateway_app import (
    Headers,
    first_chunk,
    gateway,
    log_in,
    user_of_role,
    with_demo_operator,
)

pytestmark = pytest.mark.integration

DEMO_OPERATOR_EMAIL = "operator@foodflow.local"
DEMO_CUSTOMER_EMAIL = "demo-customer@foodflow.local"

# Every JSON route of the dashboard, with a body where it takes one.
ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/dashboard/orders", None),
    ("GET", f"/dashboard/orders/{uuid.UUID(int=0)}", None),
    ("GET", "/dashboard/stats", None),
    ("GET", "/dashboard/ops", None),
    ("GET", "/dashboard/stock", None),
    ("GET", "/dashboard/couriers", None),
    ("POST", "/dashboard/test-order", {"items": [{"item_id": "no-such-dish", "quantity": 1}]}),
]


@pytest.fixture(scope="module")
def gateway_settings(settings: Settings) -> Iterator[Settings]:
    inventory = create_inventory_app(load_settings(settings, "inventory_service"))
    with served(inventory, "inventory") as inventory_url:
        yield with_demo_operator(load_settings(settings, "gateway")).model_copy(
            update={
                "inventory_url_override": inventory_url,
                "delivery_url_override": "http://127.0.0.1:9",  # nothing listens there
            }
        )


@pytest.fixture(scope="module")
async def running(gateway_settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with gateway(gateway_settings) as (app, client):
        yield app, client


@pytest.fixture(scope="module")
def app(running: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    return running[0]


@pytest.fixture(scope="module")
def client(running: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return running[1]


@pytest.fixture(scope="module")
async def db(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(settings.postgres_dsn)
    yield conn
    await conn.close()


@pytest.fixture(scope="module")
async def operator(client: httpx.AsyncClient, gateway_settings: Settings) -> Headers:
    """The demo operator, logged in with the password from the settings."""
    password = gateway_settings.demo_operator_password
    assert password is not None
    return await log_in(client, DEMO_OPERATOR_EMAIL, password.get_secret_value())


@pytest.fixture(scope="module")
async def logged_in(client: httpx.AsyncClient, db: asyncpg.Connection) -> dict[str, Headers]:
    """One logged-in user per other role (logging in once keeps clear of login limits)."""
    return {role: await user_of_role(client, db, role) for role in ("customer", "courier", "admin")}


async def call(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None, headers: Headers
) -> httpx.Response:
    return await client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_without_a_token_the_dashboard_answers_401(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    answer = await call(client, method, path, body, {})
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"] == "Bearer"
    forged = await call(client, method, path, body, {"Authorization": "Bearer not.a.token"})
    assert forged.status_code == 401, forged.text


@pytest.mark.parametrize("role", ["customer", "courier"])
@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_customers_and_couriers_get_403(
    client: httpx.AsyncClient,
    logged_in: dict[str, Headers],
    role: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    answer = await call(client, method, path, body, logged_in[role])
    assert answer.status_code == 403, answer.text


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_operators_and_admins_get_in(
    client: httpx.AsyncClient,
    logged_in: dict[str, Headers],
    operator: Headers,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    # An unknown order is a 404 past the door; everything else answers 200 or 202.
    expected = {"GET": 404 if path.startswith("/dashboard/orders/") else 200, "POST": 202}
    for headers in (operator, logged_in["admin"]):
        answer = await call(client, method, path, body, headers)
        assert answer.status_code == expected[method], answer.text


async def test_the_event_stream_is_for_operators_only(
    app: FastAPI, logged_in: dict[str, Headers], operator: Headers
) -> None:
    status, body = await first_chunk(app, "/dashboard/events", {})
    assert status == 401, body
    for role in ("customer", "courier"):
        assert (await first_chunk(app, "/dashboard/events", logged_in[role]))[0] == 403, role
    for headers in (operator, logged_in["admin"]):
        status, body = await first_chunk(app, "/dashboard/events", headers)
        assert status == 200 and body.startswith(b"retry:"), body


async def test_the_page_is_public_and_holds_only_a_login_form(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert 'id="login-form"' in page.text and 'id="order-user"' not in page.text


async def test_a_test_order_is_placed_by_the_demo_customer_only(
    client: httpx.AsyncClient, db: asyncpg.Connection, operator: Headers
) -> None:
    demo = await db.fetchval("SELECT user_id FROM users WHERE email = $1", DEMO_CUSTOMER_EMAIL)
    victim = str(uuid.uuid4())
    lines = [{"item_id": f"no-such-dish-{uuid.uuid4().hex[:8]}", "quantity": 100}]

    refused = await client.post(
        "/dashboard/test-order", json={"user_id": victim, "items": lines}, headers=operator
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "body.user_id"
    assert not await db.fetchval(
        "SELECT count(*) FROM customer_orders WHERE request->>'user_id' = $1", victim
    )

    placed = await client.post("/dashboard/test-order", json={"items": lines}, headers=operator)
    assert placed.status_code == 202, placed.text
    assert placed.json()["user_id"] == str(demo)
    row = await db.fetchrow(
        "SELECT user_id, request FROM customer_orders WHERE order_id = $1",
        uuid.UUID(placed.json()["order_id"]),
    )
    assert row is not None and row["user_id"] == demo
    assert ValidatedOrder.model_validate_json(row["request"]).user_id == str(demo)


async def test_the_demo_customer_cannot_log_in_and_sign_up_cannot_choose_a_role(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post(
        "/auth/login", json={"email": DEMO_CUSTOMER_EMAIL, "password": "demo password"}
    )
    assert answer.status_code == 401, answer.text
    email = f"signup-{uuid.uuid4().hex[:12]}@example.com"
    body = {"email": email, "name": "M", "password": "a long enough password", "role": "admin"}
    assert (await client.post("/users", json=body)).status_code == 422
    del body["role"]
    created = await client.post("/users", json=body)
    assert created.status_code == 202, created.text
    headers = await log_in(client, email, body["password"])
    me = await client.get("/users/me", headers=headers)
    assert me.json()["role"] == "customer", me.text


async def test_the_openapi_shows_the_test_order_has_no_user(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()["components"]["schemas"]
    test_order = schema["TestOrderRequest"]
    assert "user_id" not in test_order["properties"]
    assert test_order["additionalProperties"] is False


async def test_many_viewers_cost_one_measurement(
    client: httpx.AsyncClient, operator: Headers
) -> None:
    """The dashboard must not be a way to load Kafka or PostgreSQL: fifty viewers asking at once
    all get the last report of the one refresh task, measured once for all of them."""
    for _ in range(100):  # the first measurement (within DASHBOARD_REFRESH_SECONDS of start)
        if (await client.get("/dashboard/ops", headers=operator)).json()["measured_at"]:
            break
        await asyncio.sleep(0.2)
    answers = await asyncio.gather(
        *(client.get("/dashboard/ops", headers=operator) for _ in range(50))
    )
    assert all(a.status_code == 200 for a in answers)
    measured = {a.json()["measured_at"] for a in answers}
    assert None not in measured and len(measured) <= 2  # a refresh may land in between
