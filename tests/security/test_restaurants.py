"""Restaurant staff (issue 17): a staff account is bound to one restaurant by an operator, and
every staff route acts on that restaurant only. Another restaurant's order is a 404 (its id
does not leak, nothing moves); customers, couriers, operators and admins are no restaurant's
staff (403); no token is a 401.

The gateway runs in-process and calls a real restaurant service (under uvicorn, on a free
port), both over the real PostgreSQL, Redis and Kafka. The tickets are made directly in the
restaurant service's table and the orders' state in PostgreSQL and Redis, CONFIRMED, so that
a staff step has an order to move.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from foodflow.contracts.orders import (
    DeliveryAddress,
    OrderSnapshot,
    OrderStatus,
    StatusChange,
)
from foodflow.orders.status_store import OrderStateStore, StatusCache
from foodflow.platform.config import Settings
from foodflow.platform.db.pool import create_pool
from foodflow.restaurant_service.app import create_app as create_restaurant_app
from foodflow.tools.secrets import load_settings
from tests.served import served

from .gateway_app import PASSWORD, Headers, gateway, log_in, user_of_role

pytestmark = pytest.mark.integration

# What the `ticket_at` fixture gives a test: a new PENDING order of the restaurant given.
TicketAt = Callable[[str], Awaitable[uuid.UUID]]
ADDRESS = DeliveryAddress(address="Torstrasse 1, Berlin", lat=52.529, lon=13.401)
CONFIRMED = (OrderStatus.RECEIVED, OrderStatus.PROCESSING, OrderStatus.CONFIRMED)
MINE, THEIRS = "tokyo-kitchen", "saigon-street"


def staff_routes(order_id: uuid.UUID) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every staff route, for one order (the item and opening routes act on the restaurant)."""
    ticket = f"/restaurant/orders/{order_id}"
    return [
        ("GET", "/restaurant", None),
        ("GET", "/restaurant/orders", None),
        ("GET", ticket, None),
        ("POST", f"{ticket}/accept", {"ready_in_minutes": 10}),
        ("POST", f"{ticket}/prepare", None),
        ("POST", f"{ticket}/delay", {"ready_in_minutes": 5}),
        ("POST", f"{ticket}/ready", None),
        ("POST", f"{ticket}/reject", {"reason": "KITCHEN_BUSY"}),
        ("PUT", "/restaurant/items/ramen/availability", {"available": True}),
        ("PUT", "/restaurant/opening", {"accepting": True}),
    ]


@pytest.fixture(scope="module")
def gateway_settings(settings: Settings) -> Iterator[Settings]:
    # An instance number of its own: with static membership, one that a running restaurant
    # service also has would fence that service's consumer out of the group.
    own = load_settings(settings, "restaurant_service").model_copy(update={"instance": 91})
    with served(create_restaurant_app(own), "restaurant") as restaurant_url:
        yield load_settings(settings, "gateway").model_copy(
            update={"restaurant_url_override": restaurant_url}
        )


@pytest.fixture(scope="module")
async def client(gateway_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway(gateway_settings) as (_, client):
        yield client


@pytest.fixture(scope="module")
async def db(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(settings.postgres_dsn)
    yield conn
    await conn.close()


@pytest.fixture(scope="module")
async def store(settings: Settings) -> AsyncIterator[OrderStateStore]:
    client = aioredis.from_url(settings.redis_url)
    pool = await create_pool(settings, min_size=1, max_size=2)
    yield OrderStateStore(pool, StatusCache(client, 3600))
    await pool.close()
    await client.aclose()


@pytest.fixture(scope="module")
async def operator(client: httpx.AsyncClient, db: asyncpg.Connection) -> Headers:
    return await user_of_role(client, db, "operator")


async def staff_account(
    client: httpx.AsyncClient, operator: Headers, restaurant_id: str
) -> Headers:
    """A staff account made through the operators' endpoint, logged in."""
    email = f"staff-{uuid.uuid4().hex[:12]}@example.com"
    body = {"email": email, "name": "Staff", "password": PASSWORD, "restaurant_id": restaurant_id}
    created = await client.post("/restaurants/accounts", json=body, headers=operator)
    assert created.status_code == 201, created.text
    assert (created.json()["role"], created.json()["restaurant_id"]) == (
        "restaurant",
        restaurant_id,
    )
    return await log_in(client, email, PASSWORD)


@pytest.fixture(scope="module")
async def mine(client: httpx.AsyncClient, operator: Headers) -> Headers:
    return await staff_account(client, operator, MINE)


@pytest.fixture(scope="module")
async def theirs(client: httpx.AsyncClient, operator: Headers) -> Headers:
    return await staff_account(client, operator, THEIRS)


@pytest.fixture
async def ticket_at(db: asyncpg.Connection, store: OrderStateStore) -> AsyncIterator[TicketAt]:
    """Makes CONFIRMED orders, each with a PENDING ticket at the restaurant given; removed
    after."""
    made: list[uuid.UUID] = []

    async def make(restaurant_id: str) -> uuid.UUID:
        order_id, now = uuid.uuid4(), datetime.now(UTC)
        await store.save(
            OrderSnapshot(
                order_id=order_id,
                user_id=f"test-{uuid.uuid4().hex[:8]}",
                status=OrderStatus.CONFIRMED,
                version=len(CONFIRMED),
                created_at=now,
                updated_at=now,
                delivery_address=ADDRESS,
                history=[
                    StatusChange(status=s, version=v, at=now) for v, s in enumerate(CONFIRMED, 1)
                ],
            )
        )
        await db.execute(
            "INSERT INTO kitchen_tickets (order_id, restaurant_id, state, lines)"
            " VALUES ($1, $2, 'PENDING', $3::jsonb)",
            order_id,
            restaurant_id,
            json.dumps([{"item_id": "ramen", "quantity": 1}]),
        )
        made.append(order_id)
        return order_id

    yield make
    await db.execute("DELETE FROM kitchen_tickets WHERE order_id = ANY($1::uuid[])", made)


async def ticket_state(db: asyncpg.Connection, order_id: uuid.UUID) -> str:
    state: str = await db.fetchval(
        "SELECT state FROM kitchen_tickets WHERE order_id = $1", order_id
    )
    return state


async def call(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None, headers: Headers
) -> httpx.Response:
    return await client.request(method, path, json=body, headers=headers)


async def test_another_restaurants_order_is_not_found_and_nothing_moves(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    mine: Headers,
    theirs: Headers,
    ticket_at: TicketAt,
) -> None:
    order_id = await ticket_at(MINE)
    listed = (await client.get("/restaurant/orders", headers=theirs)).json()["tickets"]
    assert str(order_id) not in {t["order_id"] for t in listed}
    for method, path, body in staff_routes(order_id)[2:8]:  # the routes naming the order
        answer = await call(client, method, path, body, theirs)
        assert answer.status_code == 404, (path, answer.text)
        assert MINE not in answer.text
    assert await ticket_state(db, order_id) == "PENDING"

    own = (await client.get("/restaurant/orders", headers=mine)).json()["tickets"]
    assert str(order_id) in {t["order_id"] for t in own}
    accepted = await client.post(
        f"/restaurant/orders/{order_id}/accept", json={"ready_in_minutes": 10}, headers=mine
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["state"] == "ACCEPTED" and accepted.json()["ready_by"]
    refused = await client.post(f"/restaurant/orders/{order_id}/ready", headers=theirs)
    assert refused.status_code == 404, refused.text
    assert await ticket_state(db, order_id) == "ACCEPTED"


@pytest.mark.parametrize("role", ["customer", "courier", "operator", "admin"])
async def test_no_one_but_restaurant_staff_uses_the_staff_routes(
    client: httpx.AsyncClient, db: asyncpg.Connection, ticket_at: TicketAt, role: str
) -> None:
    order_id = await ticket_at(MINE)
    headers = await user_of_role(client, db, role)
    for method, path, body in staff_routes(order_id):
        answer = await call(client, method, path, body, headers)
        assert answer.status_code == 403, (path, answer.text)
        assert (await call(client, method, path, body, {})).status_code == 401, path
    unbound = await user_of_role(client, db, "restaurant")  # bound to no restaurant
    answer = await client.get("/restaurant/orders", headers=unbound)
    assert answer.status_code == 403 and "not bound" in answer.text, answer.text
    assert await ticket_state(db, order_id) == "PENDING"


async def test_staff_accounts_are_made_by_operators_for_known_restaurants(
    client: httpx.AsyncClient, db: asyncpg.Connection, operator: Headers, mine: Headers
) -> None:
    def body(**extra: str) -> dict[str, str]:
        email = f"staff-{uuid.uuid4().hex[:12]}@example.com"
        return {"email": email, "name": "S", "password": PASSWORD, "restaurant_id": MINE} | extra

    assert (await client.post("/restaurants/accounts", json=body())).status_code == 401
    for headers in (mine, *[await user_of_role(client, db, r) for r in ("customer", "courier")]):
        answer = await client.post("/restaurants/accounts", json=body(), headers=headers)
        assert answer.status_code == 403, answer.text
    unknown = await client.post(
        "/restaurants/accounts", json=body(restaurant_id="no-such-place"), headers=operator
    )
    assert unknown.status_code == 422 and "no restaurant" in unknown.text, unknown.text
    with_role = await client.post(
        "/restaurants/accounts", json=body(role="admin"), headers=operator
    )
    assert with_role.status_code == 422, with_role.text


async def test_a_staff_account_cannot_order_nor_read_a_customers_order(
    client: httpx.AsyncClient, mine: Headers, ticket_at: TicketAt
) -> None:
    """Staff see their tickets (lines, times), never the order itself: its customer, address
    and payment are a customer's (and an admin's)."""
    order_id = await ticket_at(MINE)
    assert (await client.get(f"/orders/{order_id}", headers=mine)).status_code == 404
    ticket = (await client.get(f"/restaurant/orders/{order_id}", headers=mine)).json()
    assert not {"user_id", "delivery_address", "price", "address"} & set(ticket)
