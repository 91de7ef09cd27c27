"""A dependency that comes back within the grace fails no order (issue 13, part C).

Reproduces "inventory down 9 s → 208 orders FAILED/INVENTORY_UNAVAILABLE": orders keep coming
while the inventory service is stopped for OUTAGE_SECONDS and started again; every one of them
must end CONFIRMED, and the order manager's `/ready` must say unavailable meanwhile.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from decimal import Decimal

import asyncpg
import pytest
import redis.asyncio as aioredis

from foodflow.contracts import topics
from foodflow.contracts.orders import OrderItemIn, ValidatedOrder
from foodflow.platform.config import Settings
from foodflow.platform.kafka.producer import EventProducer
from foodflow.tools import http, processes

from .conftest import E2E_ENV, wait_final

pytestmark = pytest.mark.e2e

OUTAGE_SECONDS = 10.0
ORDERS_PER_SECOND = 10
STOCK = 2000


async def ready_status(manager: processes.ServiceProcess) -> int | None:
    """The order manager's `/ready` status code (None if it did not answer)."""
    try:
        response = await asyncio.to_thread(http.get, manager.url + "/ready", timeout=5.0)
    except http.HTTP_ERRORS:
        return None
    return response.status_code


async def until_ready_is(manager: processes.ServiceProcess, status: int, within: float) -> None:
    deadline = time.monotonic() + within
    while (seen := await ready_status(manager)) != status:
        assert time.monotonic() < deadline, f"/ready answered {seen}, not {status}"
        await asyncio.sleep(0.2)


async def test_orders_sent_through_a_short_inventory_outage_all_confirm(
    system: Settings, db: asyncpg.Connection, redis_client: aioredis.Redis
) -> None:
    grace = float(E2E_ENV["DEPENDENCY_GRACE_SECONDS"])
    item_id = f"test-{uuid.uuid4().hex[:10]}"
    await db.execute(
        "INSERT INTO inventory_items (item_id, name, price, stock) VALUES ($1, 'outage', $2, $3)",
        item_id,
        Decimal("3.10"),
        STOCK,
    )
    inventory = processes.ServiceProcess("inventory_service", system, E2E_ENV)
    manager = processes.ServiceProcess("order_manager", system, E2E_ENV)
    sent: list[uuid.UUID] = []
    sending = asyncio.Event()
    sending.set()

    async def send_orders(producer: EventProducer) -> None:
        while sending.is_set():
            order = ValidatedOrder(
                order_id=uuid.uuid4(),
                user_id=f"outage-{len(sent)}",
                items=[OrderItemIn(item_id=item_id, quantity=1)],
            )
            await producer.publish(topics.VALIDATED_ORDERS, order, key=str(order.order_id))
            assert order.order_id is not None
            sent.append(order.order_id)
            await asyncio.sleep(1 / ORDERS_PER_SECOND)

    async with EventProducer(system) as producer:
        sender = asyncio.create_task(send_orders(producer))
        try:
            await asyncio.sleep(2)
            stopped_at = time.monotonic()
            await asyncio.to_thread(inventory.stop)
            try:
                sent_before_outage = len(sent)
                await until_ready_is(manager, 503, within=OUTAGE_SECONDS)
                await asyncio.sleep(max(0.0, stopped_at + OUTAGE_SECONDS - time.monotonic()))
                sent_during_outage = len(sent) - sent_before_outage
            finally:
                await asyncio.to_thread(inventory.start)
            outage = time.monotonic() - stopped_at
            await asyncio.sleep(2)
        finally:
            sending.clear()
            await sender
    assert sent_during_outage >= OUTAGE_SECONDS * ORDERS_PER_SECOND / 2
    # Stopping and starting the service is part of the outage: it must stay within the grace.
    assert outage < grace, f"inventory was away {outage:.0f}s, more than the {grace:.0f}s grace"

    finals = [await wait_final(redis_client, order_id, timeout=120) for order_id in sent]
    outcomes = Counter((final.status.value, final.reason) for final in finals)
    assert outcomes == {("CONFIRMED", None): len(sent)}
    stock = await db.fetchval("SELECT stock FROM inventory_items WHERE item_id = $1", item_id)
    assert stock == STOCK - len(sent)
    await until_ready_is(manager, 200, within=30)
