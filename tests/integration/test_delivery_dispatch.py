"""The delivery use cases against the real PostgreSQL and Redis: waiting for a courier, being
assigned when one frees up, and being cancelled and refunded after the waiting limit.

"No courier free" is made by holding a row lock on every courier (nothing is changed): the
dispatch round skips locked couriers, exactly as if they were busy.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from foodflow.contracts.orders import (
    DeliveryAddress,
    FailureReason,
    OrderFinalEvent,
    OrderSnapshot,
    OrderStatus,
    OrderStatusUpdate,
    PricedItem,
    StatusChange,
)
from foodflow.contracts.payment import PaymentRequest, PaymentResult
from foodflow.delivery_service import services
from foodflow.delivery_service.order_status import OrderStatusMover
from foodflow.delivery_service.repository import DeliveryRepository
from foodflow.delivery_service.services import DeliveryPorts
from foodflow.orders.status_store import OrderStateStore, StatusCache
from foodflow.platform.config import Settings
from foodflow.platform.db.pool import create_pool

pytestmark = pytest.mark.integration


class Announced:
    def __init__(self) -> None:
        self.updates: list[OrderStatusUpdate] = []
        self.finals: list[OrderFinalEvent] = []

    async def __call__(self, update: OrderStatusUpdate, final: OrderFinalEvent | None) -> None:
        self.updates.append(update)
        if final is not None:
            self.finals.append(final)


class FakePayment:
    def __init__(self) -> None:
        self.refunded: list[uuid.UUID] = []

    async def refund(self, request: PaymentRequest) -> PaymentResult:
        self.refunded.append(request.order_id)
        return PaymentResult(
            order_id=request.order_id,
            operation="REFUND",
            approved=True,
            state="REFUNDED",
            amount_cents=100,
        )


class FakeStock:
    def __init__(self) -> None:
        self.returned: list[uuid.UUID] = []

    async def cancel(self, order_id: uuid.UUID) -> None:
        self.returned.append(order_id)


@pytest.fixture
async def parts(
    settings: Settings,
) -> AsyncIterator[tuple[asyncpg.Pool, OrderStateStore, Announced]]:
    pool = await create_pool(settings, min_size=1, max_size=4)
    client = aioredis.from_url(settings.redis_url)
    yield pool, OrderStateStore(pool, StatusCache(client, 600)), Announced()
    # Whatever a failed test left behind must not hold a courier.
    await pool.execute(
        "UPDATE couriers SET available = true, current_order = NULL WHERE current_order IN"
        " (SELECT order_id FROM deliveries WHERE user_id = 'dispatch-test')"
    )
    await pool.execute("DELETE FROM deliveries WHERE user_id = 'dispatch-test'")
    await client.aclose()
    await pool.close()


def dispatcher(
    settings: Settings,
    pool: asyncpg.Pool,
    store: OrderStateStore,
    announced: Announced,
    **over: Any,
) -> tuple[DeliveryPorts, FakePayment, FakeStock]:
    payment, stock = FakePayment(), FakeStock()
    tuned = settings.model_copy(update=over)
    ports = DeliveryPorts(
        deliveries=DeliveryRepository(pool),
        statuses=OrderStatusMover(store, announced),
        payment=payment,  # type: ignore[arg-type]
        stock=stock,
        courier_wait_limit_seconds=tuned.courier_wait_limit_seconds,
        courier_speed_kmh=tuned.courier_speed_kmh,
    )
    return ports, payment, stock


async def confirmed_order(store: OrderStateStore) -> OrderSnapshot:
    now = datetime.now(UTC)
    snapshot = OrderSnapshot(
        order_id=uuid.uuid4(),
        user_id="dispatch-test",
        status=OrderStatus.CONFIRMED,
        version=3,
        created_at=now,
        updated_at=now,
        delivery_address=DeliveryAddress(address="Torstr. 1", lat=52.53, lon=13.40),
        items=[PricedItem(item_id="pho-bo", quantity=1, unit_price=Decimal("9.00"))],
        history=[
            StatusChange(status=s, version=v, at=now)
            for v, s in enumerate(
                (OrderStatus.RECEIVED, OrderStatus.PROCESSING, OrderStatus.CONFIRMED), 1
            )
        ],
    )
    await store.save(snapshot)
    return snapshot


async def test_an_order_waits_while_no_courier_is_free_then_gets_the_one_that_frees_up(
    settings: Settings, parts: tuple[asyncpg.Pool, OrderStateStore, Announced]
) -> None:
    pool, store, announced = parts
    d, _, _ = dispatcher(settings, pool, store, announced)
    order = await confirmed_order(store)
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM couriers FOR UPDATE")  # every courier "busy"
        assert await services.take_in(d, order)
        assert not await services.take_in(d, order)  # a second CONFIRMED event changes nothing
        await services.dispatch_round(d)
        assert (await services.get_delivery(d, order.order_id)).state == "WAITING"
        assert (await store.load_snapshot(order.order_id)).status == "CONFIRMED"  # type: ignore[union-attr]
    # The couriers are free again: the next round (ours, or the running service's) assigns one.
    await services.dispatch_round(d)
    view = await services.get_delivery(d, order.order_id)
    assert view.state == "ASSIGNED" and view.courier_id and view.eta_minutes
    current = await store.load_snapshot(order.order_id)
    assert current is not None and (current.status, current.version) == ("COURIER_ASSIGNED", 4)
    cancelled = await services.cancel_delivery(d, order.order_id, FailureReason.CUSTOMER_CANCELLED)
    assert cancelled.state == "CANCELLED"  # and the courier is free again
    assert await pool.fetchval(
        "SELECT available FROM couriers WHERE courier_id = $1", view.courier_id
    )


async def test_waiting_too_long_cancels_and_refunds(
    settings: Settings, parts: tuple[asyncpg.Pool, OrderStateStore, Announced]
) -> None:
    pool, store, announced = parts
    d, payment, stock = dispatcher(
        settings, pool, store, announced, courier_wait_limit_seconds=0.01
    )
    order = await confirmed_order(store)
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM couriers FOR UPDATE")
        await services.take_in(d, order)
        await pool.execute(
            "UPDATE deliveries SET waiting_since = now() - interval '1 minute' WHERE order_id = $1",
            order.order_id,
        )
        await services.dispatch_round(d)
    assert (await services.get_delivery(d, order.order_id)).state == "CANCELLED"
    current = await store.load_snapshot(order.order_id)
    assert current is not None
    assert (current.status, current.reason, current.version) == ("CANCELLED", "NO_COURIER", 4)
    assert payment.refunded == [order.order_id] and stock.returned == [order.order_id]
    assert [f.status for f in announced.finals] == ["CANCELLED"]
    assert [h.status for h in announced.finals[0].history][-1] == "CANCELLED"
