"""Redis is a cache: flushed while orders wait for or carry a courier, every order still moves
on correctly, nothing regresses and the dispatch goes on (issue 13, finding 3, reproduced live
with `redis-cli FLUSHALL` on a running system)."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from foodflow.platform.config import Settings

from ..service_auth import as_caller
from .test_gateway_orders import (
    api,  # noqa: F401 - the fixture
    carrying,
    cooked,
    courier_of,
    kitchen_staff,
    order_body,
    place,
    sign_up,
    staff,
)

pytestmark = pytest.mark.e2e


async def stored(db: asyncpg.Connection, order_id: str) -> tuple[int, str]:
    row = await db.fetchrow(
        "SELECT version, status FROM order_state WHERE order_id = $1", uuid.UUID(order_id)
    )
    assert row is not None
    return row["version"], row["status"]


async def test_a_flushed_cache_loses_no_order_step_or_courier(
    api: httpx.AsyncClient,  # noqa: F811
    db: asyncpg.Connection,
    redis_client: aioredis.Redis,
    system: Settings,
    test_item: tuple[str, Decimal],
) -> None:
    item_id, _ = test_item
    customer, admin = await sign_up(api), await staff(api, db, "admin")
    keyed = {**customer, "Idempotency-Key": uuid.uuid4().hex}
    to_deliver = await place(api, keyed, order_body(item_id, 1))
    to_cancel = await place(api, customer, order_body(item_id, 1))
    cook = await kitchen_staff(api, admin)
    for order_id in (to_deliver, to_cancel):
        await cooked(api, cook, customer, order_id)
    courier = await courier_of(api, db, admin, await carrying(api, admin, to_deliver))
    before = await stored(db, to_deliver)

    await redis_client.flushall()

    # The customer still sees the order as it is, from the truth in PostgreSQL.
    seen = (await api.get(f"/orders/{to_deliver}", headers=customer)).json()
    assert seen["status"] == before[1], seen
    # The same Idempotency-Key places nothing again and moves nothing back.
    again = await api.post("/orders", json=order_body(item_id, 1), headers=keyed)
    assert again.status_code == 202 and again.json()["status"] == "ALREADY_PLACED", again.text
    await asyncio.sleep(2)  # time enough for a wrongly re-run saga to store a RECEIVED
    assert await stored(db, to_deliver) == before

    picked = await api.post(f"/deliveries/{to_deliver}/pickup", headers=courier)
    assert picked.status_code == 200 and picked.json()["status"] == "PICKED_UP", picked.text
    done = await api.post(f"/deliveries/{to_deliver}/deliver", headers=courier)
    assert done.status_code == 200 and done.json()["status"] == "DELIVERED", done.text

    cancelled = await api.post(f"/orders/{to_cancel}/cancel", headers=customer)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED"
    delivery = as_caller(system, "delivery_service", "payment_service")
    async with httpx.AsyncClient(headers=delivery) as plain:
        answer = await plain.get(f"{system.payment_url}/payments/{to_cancel}")
    assert answer.json()["payment"]["state"] == "REFUNDED"
    busy = await db.fetchval(
        "SELECT count(*) FROM couriers WHERE current_order = ANY($1::uuid[])",
        [uuid.UUID(to_deliver), uuid.UUID(to_cancel)],
    )
    assert busy == 0

    # Dispatch goes on: a new order gets a courier.
    after = await place(api, customer, order_body(item_id, 1))
    await cooked(api, cook, customer, after)
    await api.post(f"/orders/{after}/cancel", headers=customer)  # frees the courier
