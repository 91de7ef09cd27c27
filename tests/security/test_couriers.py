"""Finding 6 (couriers): courier accounts were tied to no courier, so any courier could report
any delivery's steps. A courier account is now bound to a courier row by an operator, and
pickup/deliver are refused (403) to every courier but the one carrying the order.

The gateway runs in-process and calls a real delivery service (under uvicorn, on a free port),
both over the real PostgreSQL, Redis and Kafka. The deliveries are made directly in their
table and the orders' status in Redis, already assigned, so that no courier is taken.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from foodflow.contracts.orders import (
    DeliveryAddress,
    OrderItemIn,
    OrderSnapshot,
    OrderStatus,
    StatusChange,
    ValidatedOrder,
)
from foodflow.delivery_service.app import create_app as create_delivery_app
from foodflow.orders.status_store import OrderStateStore, StatusCache
from foodflow.platform.config import Settings
from foodflow.platform.db.pool import create_pool
from foodflow.tools.secrets import load_settings
from tests.served import served

from .gateway_app import PASSWORD, Headers, gateway, log_in, user_of_role

pytestmark = pytest.mark.integration

# What the `assigned_to` fixture gives a test: an order assigned to the courier given.
AssignedTo = Callable[[str], Awaitable[uuid.UUID]]
ADDRESS = DeliveryAddress(address="Torstrasse 1, Berlin", lat=52.529, lon=13.401)
ASSIGNED = (
    OrderStatus.RECEIVED,
    OrderStatus.PROCESSING,
    OrderStatus.CONFIRMED,
    OrderStatus.COURIER_ASSIGNED,
)


@pytest.fixture(scope="module")
def gateway_settings(settings: Settings) -> Iterator[Settings]:
    # An instance number of its own: with static membership, one that a running delivery
    # service also has would fence that service's consumer out of the group.
    own = load_settings(settings, "delivery_service").model_copy(update={"instance": 90})
    delivery = create_delivery_app(own)
    with served(delivery, "delivery") as delivery_url:
        yield load_settings(settings, "gateway").model_copy(
            update={"delivery_url_override": delivery_url}
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
async def couriers(db: asyncpg.Connection) -> tuple[str, str]:
    """Two couriers of the delivery service's: the one carrying the order, and another."""
    mine, other = [
        r["courier_id"]
        for r in await db.fetch("SELECT courier_id FROM couriers ORDER BY courier_id LIMIT 2")
    ]
    return mine, other


@pytest.fixture(scope="module")
async def staff(client: httpx.AsyncClient, db: asyncpg.Connection) -> Headers:
    return await user_of_role(client, db, "operator")


async def courier_account(client: httpx.AsyncClient, staff: Headers, courier_id: str) -> Headers:
    """A courier account made through the operators' endpoint, logged in."""
    email = f"rider-{uuid.uuid4().hex[:12]}@example.com"
    body = {"email": email, "name": "Rider", "password": PASSWORD, "courier_id": courier_id}
    created = await client.post("/couriers/accounts", json=body, headers=staff)
    assert created.status_code == 201, created.text
    assert (created.json()["role"], created.json()["courier_id"]) == ("courier", courier_id)
    return await log_in(client, email, PASSWORD)


@pytest.fixture
async def assigned_to(db: asyncpg.Connection, store: OrderStateStore) -> AsyncIterator[AssignedTo]:
    """Makes orders of a new customer's, each assigned to the courier given; removed after."""
    made: list[uuid.UUID] = []

    async def make(courier_id: str) -> uuid.UUID:
        order_id, user_id, now = uuid.uuid4(), uuid.uuid4(), datetime.now(UTC)
        order = ValidatedOrder(
            order_id=order_id,
            user_id=str(user_id),
            items=[OrderItemIn(item_id="pho-bo", quantity=1)],
            delivery_address=ADDRESS,
        )
        await db.execute(
            "INSERT INTO users (user_id, email, name, password_hash, role)"
            " VALUES ($1, $2, 'C', 'x', 'customer')",
            user_id,
            f"customer-{user_id.hex[:12]}@example.com",
        )
        await db.execute(
            "INSERT INTO customer_orders (order_id, user_id, request_hash, request)"
            " VALUES ($1, $2, 'h', $3::jsonb)",
            order_id,
            user_id,
            order.model_dump_json(),
        )
        await store.save(
            OrderSnapshot(
                order_id=order_id,
                user_id=str(user_id),
                status=OrderStatus.COURIER_ASSIGNED,
                version=len(ASSIGNED),
                created_at=now,
                updated_at=now,
                delivery_address=ADDRESS,
                history=[
                    StatusChange(status=s, version=v, at=now) for v, s in enumerate(ASSIGNED, 1)
                ],
            )
        )
        # The kitchen has the food ready, so that the courier may pick it up.
        await db.execute(
            "INSERT INTO deliveries (order_id, user_id, state, restaurant_id, restaurant_name,"
            " pickup_lat, pickup_lon, ready_by, food_ready, address, lat, lon,"
            " courier_id, distance_km, eta_minutes)"
            " VALUES ($1, $2, 'ASSIGNED', 'central-kitchen', 'Central Kitchen', 52.515, 13.39,"
            " now(), true, $3, $4, $5, $6, 1.5, 10)",
            order_id,
            str(user_id),
            ADDRESS.address,
            ADDRESS.lat,
            ADDRESS.lon,
            courier_id,
        )
        await db.execute(
            "UPDATE couriers SET available = false, current_order = $1 WHERE courier_id = $2",
            order_id,
            courier_id,
        )
        made.append(order_id)
        return order_id

    yield make
    await db.execute("DELETE FROM deliveries WHERE order_id = ANY($1::uuid[])", made)
    await db.execute(
        "UPDATE couriers SET available = true, current_order = NULL"
        " WHERE current_order = ANY($1::uuid[])",
        made,
    )


async def state_of(db: asyncpg.Connection, order_id: uuid.UUID) -> str:
    state: str = await db.fetchval("SELECT state FROM deliveries WHERE order_id = $1", order_id)
    return state


async def test_only_the_bound_courier_reports_its_deliverys_steps(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    staff: Headers,
    couriers: tuple[str, str],
    assigned_to: AssignedTo,
) -> None:
    mine, other = couriers
    rider = await courier_account(client, staff, mine)
    stranger = await courier_account(client, staff, other)
    unbound = await user_of_role(client, db, "courier")
    customer = await user_of_role(client, db, "customer")
    order_id = await assigned_to(mine)

    for who, detail in (
        (stranger, f"is not assigned to {other}"),
        (unbound, "not bound to a courier"),
        (customer, "only couriers"),
    ):
        refused = await client.post(f"/deliveries/{order_id}/pickup", headers=who)
        assert refused.status_code == 403, refused.text
        assert detail in refused.json()["detail"]
    assert await state_of(db, order_id) == "ASSIGNED"

    picked = await client.post(f"/deliveries/{order_id}/pickup", headers=rider)
    assert picked.status_code == 200, picked.text
    assert picked.json()["status"] == "PICKED_UP"
    refused = await client.post(f"/deliveries/{order_id}/deliver", headers=stranger)
    assert refused.status_code == 403, refused.text
    assert await state_of(db, order_id) == "PICKED_UP"


async def test_staff_report_any_deliverys_step(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    staff: Headers,
    couriers: tuple[str, str],
    assigned_to: AssignedTo,
) -> None:
    order_id = await assigned_to(couriers[1])
    picked = await client.post(f"/deliveries/{order_id}/pickup", headers=staff)
    assert picked.status_code == 200 and picked.json()["status"] == "PICKED_UP", picked.text


async def test_courier_accounts_are_made_by_staff_for_known_couriers(
    client: httpx.AsyncClient, db: asyncpg.Connection, staff: Headers, couriers: tuple[str, str]
) -> None:
    def body(**extra: str) -> dict[str, str]:
        email = f"rider-{uuid.uuid4().hex[:12]}@example.com"
        return {
            "email": email,
            "name": "R",
            "password": PASSWORD,
            "courier_id": couriers[0],
        } | extra

    assert (await client.post("/couriers/accounts", json=body())).status_code == 401
    for role in ("customer", "courier"):
        headers = await user_of_role(client, db, role)
        answer = await client.post("/couriers/accounts", json=body(), headers=headers)
        assert answer.status_code == 403, answer.text
    unknown = await client.post(
        "/couriers/accounts", json=body(courier_id="no-such-courier"), headers=staff
    )
    assert unknown.status_code == 422 and "no courier" in unknown.text, unknown.text
    with_role = await client.post("/couriers/accounts", json=body(role="admin"), headers=staff)
    assert with_role.status_code == 422, with_role.text


async def test_a_courier_reads_only_the_delivery_they_carry(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    staff: Headers,
    couriers: tuple[str, str],
    assigned_to: AssignedTo,
) -> None:
    mine, other = couriers
    rider = await courier_account(client, staff, mine)
    stranger = await courier_account(client, staff, other)
    order_id = await assigned_to(mine)

    assert (await client.get("/couriers/me")).status_code == 401
    for role in ("customer", "courier", "operator"):  # the courier bound to no courier
        refused = await client.get("/couriers/me", headers=await user_of_role(client, db, role))
        assert refused.status_code == 403, refused.text
    seen = await client.get("/couriers/me", headers=rider)
    assert seen.status_code == 200, seen.text
    body = seen.json()
    assert (body["courier_id"], body["delivery"]["order_id"]) == (mine, str(order_id))
    assert body["delivery"]["state"] == "ASSIGNED"
    assert body["delivery"]["dropoff"] == {"lat": ADDRESS.lat, "lon": ADDRESS.lon}
    assert set(body["delivery"]["pickup"]) == {"lat", "lon"}
    assert "user_id" not in body["delivery"]  # who ordered is not the courier's business
    theirs = (await client.get("/couriers/me", headers=stranger)).json()
    assert theirs["courier_id"] == other
    assert theirs["delivery"] is None or theirs["delivery"]["order_id"] != str(order_id)
