"""The delivery use cases against the real PostgreSQL, Redis and Kafka: an order waits for its
kitchen and then for a courier, the courier is sent when the ride brings them to the restaurant
as the food is ready, a delay moves the ETA, a rejection is refunded once and its stock
returned, pickup waits for the food, arrival is recorded; and the consumer of
`order_status_updates` follows an order's kitchen from its events.

"No courier free" is made by holding a row lock on every courier (nothing is changed): the
dispatch round skips locked couriers, exactly as if they were busy. The restaurant's steps
are made as the restaurant service makes them: the order's snapshot advanced and saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from foodflow.contracts.orders import (
    DeliveryAddress,
    FailureReason,
    KitchenPlan,
    OrderFinalEvent,
    OrderSnapshot,
    OrderStatus,
    OrderStatusUpdate,
    PricedItem,
    StatusChange,
)
from foodflow.contracts.payment import PaymentRequest, PaymentResult
from foodflow.delivery_service import services
from foodflow.delivery_service.app import (
    MIGRATIONS,
    SERVICE,
    DeliveryRuntime,
    create_app,
    followed_orders,
)
from foodflow.delivery_service.domain import (
    Point,
    choose_courier,
    dispatch_at,
    ride,
)
from foodflow.delivery_service.order_status import OrderStatusMover
from foodflow.delivery_service.repository import DeliveryRepository
from foodflow.delivery_service.services import DeliveryPorts
from foodflow.orders.lifecycle import advance
from foodflow.orders.status_store import OrderStateStore, StatusCache
from foodflow.platform.config import Settings
from foodflow.platform.db.migrations import migrate_pool
from foodflow.platform.db.pool import create_pool
from foodflow.platform.kafka.admin import delete_topics, ensure_topics, wait_for_kafka
from foodflow.platform.kafka.consumer import BatchConsumer
from foodflow.platform.kafka.producer import EventProducer
from foodflow.tools.secrets import load_settings

from ..service_auth import as_caller

pytestmark = pytest.mark.integration

USER = "dispatch-test"
RESTAURANT = Point(52.5200, 13.4050)


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


class Clock:
    """The dispatcher's clock: real time, until a test sets it."""

    def __init__(self) -> None:
        self.at: datetime | None = None

    def __call__(self) -> datetime:
        return self.at or datetime.now(UTC)


Parts = tuple[asyncpg.Pool, OrderStateStore, Announced]


@pytest.fixture
async def parts(settings: Settings) -> AsyncIterator[Parts]:
    pool = await create_pool(settings, min_size=1, max_size=4)
    await migrate_pool(pool, SERVICE, MIGRATIONS)  # as the service does before it serves
    client = aioredis.from_url(settings.redis_url)
    yield pool, OrderStateStore(pool, StatusCache(client, 600)), Announced()
    # Whatever a failed test left behind must not hold a courier.
    await pool.execute(
        "UPDATE couriers SET available = true, current_order = NULL WHERE current_order IN"
        " (SELECT order_id FROM deliveries WHERE user_id = $1)",
        USER,
    )
    await pool.execute("DELETE FROM deliveries WHERE user_id = $1", USER)
    await client.aclose()
    await pool.close()


def dispatcher(
    settings: Settings, parts: Parts, clock: Clock | None = None, **over: Any
) -> tuple[DeliveryPorts, FakePayment, FakeStock]:
    pool, store, announced = parts
    payment, stock = FakePayment(), FakeStock()
    tuned = settings.model_copy(update=over)
    ports = DeliveryPorts(
        deliveries=DeliveryRepository(pool),
        statuses=OrderStatusMover(store, announced),
        payment=payment,  # type: ignore[arg-type]
        stock=stock,
        courier_wait_limit_seconds=tuned.courier_wait_limit_seconds,
        courier_speed_kmh=tuned.courier_speed_kmh,
        dispatch_tolerance_seconds=tuned.dispatch_tolerance_seconds,
        clock=clock or Clock(),
    )
    return ports, payment, stock


async def confirmed_order(store: OrderStateStore) -> OrderSnapshot:
    now = datetime.now(UTC)
    snapshot = OrderSnapshot(
        order_id=uuid.uuid4(),
        user_id=USER,
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


async def kitchen_step(
    store: OrderStateStore,
    order: OrderSnapshot,
    status: OrderStatus,
    ready_by: datetime | None = None,
    reason: FailureReason | None = None,
) -> OrderSnapshot:
    """The restaurant service's step: the order advanced (with a new plan when `ready_by` is
    given) and saved behind the version guard."""
    plan = (
        KitchenPlan(
            restaurant_id="tokyo-kitchen",
            restaurant_name="Tokyo Kitchen",
            lat=RESTAURANT.lat,
            lon=RESTAURANT.lon,
            ready_by=ready_by,
        )
        if ready_by is not None
        else None
    )
    current = await store.load_snapshot(order.order_id)
    assert current is not None
    moved = advance(current, status, reason=reason, kitchen=plan)
    await store.save(moved)
    return moved


@contextlib.asynccontextmanager
async def couriers_busy(pool: asyncpg.Pool) -> AsyncIterator[None]:
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM couriers FOR UPDATE")
        yield


async def test_an_order_waits_for_its_kitchen_and_a_free_courier_then_gets_the_one_that_frees_up(
    settings: Settings, parts: Parts
) -> None:
    pool, store, _ = parts
    d, _, _ = dispatcher(settings, parts)
    order = await confirmed_order(store)
    assert await services.take_in(d, order)
    assert not await services.take_in(d, order)  # a second CONFIRMED event changes nothing
    await services.dispatch_round(d)
    waiting = await services.get_delivery(d, order.order_id)
    assert (waiting.state, waiting.restaurant_id, waiting.ready_by) == ("WAITING", None, None)

    await kitchen_step(store, order, OrderStatus.RESTAURANT_ACCEPTED, datetime.now(UTC))
    async with couriers_busy(pool):
        assert await services.follow_orders(d, [order.order_id])
        planned = await services.get_delivery(d, order.order_id)
        assert (planned.state, planned.restaurant_id) == ("WAITING", "tokyo-kitchen")
        assert planned.restaurant_name == "Tokyo Kitchen" and planned.ready_by is not None
    # The couriers are free again: the next round (ours, or a running service's) sends one.
    await services.dispatch_round(d)
    view = await services.get_delivery(d, order.order_id)
    assert view.state == "ASSIGNED" and view.courier_id and view.eta_minutes
    current = await store.load_snapshot(order.order_id)
    assert current is not None and (current.status, current.version) == ("COURIER_ASSIGNED", 5)
    assert current.kitchen is not None and current.kitchen.restaurant_id == "tokyo-kitchen"
    cancelled = await services.cancel_delivery(d, order.order_id, FailureReason.CUSTOMER_CANCELLED)
    assert cancelled.state == "CANCELLED"  # and the courier is free again
    assert await pool.fetchval(
        "SELECT available FROM couriers WHERE courier_id = $1", view.courier_id
    )


async def test_a_courier_is_sent_no_earlier_than_the_ride_and_the_tolerance_before_ready_by(
    settings: Settings, parts: Parts
) -> None:
    _, store, _ = parts
    clock = Clock()
    d, _, _ = dispatcher(settings, parts, clock, dispatch_tolerance_seconds=30.0)
    order = await confirmed_order(store)
    await services.take_in(d, order)
    ready_by = datetime.now(UTC) + timedelta(minutes=30)
    await kitchen_step(store, order, OrderStatus.RESTAURANT_ACCEPTED, ready_by)
    await services.follow_orders(d, [order.order_id])
    nearest = choose_courier(RESTAURANT, await d.deliveries.free_couriers())
    assert nearest is not None
    to_restaurant = ride(nearest.position, RESTAURANT, settings.courier_speed_kmh)
    send_at = dispatch_at(ready_by, to_restaurant, timedelta(seconds=30))

    clock.at = send_at - timedelta(seconds=1)
    await services.dispatch_round(d)
    assert (await services.get_delivery(d, order.order_id)).state == "WAITING"

    clock.at = send_at
    await services.dispatch_round(d)
    view = await services.get_delivery(d, order.order_id)
    assert (view.state, view.courier_id) == ("ASSIGNED", nearest.courier_id)
    # The courier reaches the restaurant as the food is ready (30 s early), then rides on.
    row = await parts[0].fetchrow(
        "SELECT assigned_at, courier_due_at FROM deliveries WHERE order_id = $1", order.order_id
    )
    assert row["assigned_at"] == send_at
    assert row["courier_due_at"] == ready_by - timedelta(seconds=30)


async def test_a_delay_moves_the_eta_of_the_assigned_delivery(
    settings: Settings, parts: Parts
) -> None:
    _, store, _ = parts
    d, _, _ = dispatcher(settings, parts)
    order = await confirmed_order(store)
    await services.take_in(d, order)
    await kitchen_step(store, order, OrderStatus.RESTAURANT_ACCEPTED, datetime.now(UTC))
    await services.follow_orders(d, [order.order_id])
    first = await services.get_delivery(d, order.order_id)
    assert first.state == "ASSIGNED" and first.eta_minutes is not None

    later = datetime.now(UTC) + timedelta(minutes=40)
    await kitchen_step(store, order, OrderStatus.PREPARING, later)
    assert await services.follow_orders(d, [order.order_id])

    moved = await services.get_delivery(d, order.order_id)
    assert moved.ready_by == later and moved.courier_id == first.courier_id
    assert moved.eta_minutes is not None and moved.eta_minutes >= first.eta_minutes + 35
    current = await store.load_snapshot(order.order_id)
    assert current is not None and current.status is OrderStatus.PREPARING


async def test_a_rejection_refunds_once_returns_the_stock_and_cancels_with_its_reason(
    settings: Settings, parts: Parts
) -> None:
    _, store, announced = parts
    d, payment, stock = dispatcher(settings, parts)
    order = await confirmed_order(store)
    await services.take_in(d, order)
    await kitchen_step(
        store, order, OrderStatus.RESTAURANT_REJECTED, reason=FailureReason.KITCHEN_BUSY
    )

    await services.follow_orders(d, [order.order_id])
    await services.follow_orders(d, [order.order_id])  # the event read twice

    view = await services.get_delivery(d, order.order_id)
    assert (view.state, view.cancel_reason) == ("CANCELLED", "KITCHEN_BUSY")
    current = await store.load_snapshot(order.order_id)
    assert current is not None
    assert (current.status, current.reason, current.version) == ("CANCELLED", "KITCHEN_BUSY", 5)
    assert payment.refunded.count(order.order_id) == 1
    assert stock.returned.count(order.order_id) == 1
    mine = [f for f in announced.finals if f.order_id == order.order_id]
    assert [f.status for f in mine] == ["CANCELLED"]


async def test_waiting_too_long_after_the_food_is_ready_cancels_and_refunds(
    settings: Settings, parts: Parts
) -> None:
    pool, store, announced = parts
    d, payment, stock = dispatcher(settings, parts, courier_wait_limit_seconds=60)
    order = await confirmed_order(store)
    await services.take_in(d, order)
    ready_long_ago = datetime.now(UTC) - timedelta(minutes=2)
    await kitchen_step(store, order, OrderStatus.RESTAURANT_ACCEPTED, ready_long_ago)
    async with couriers_busy(pool):
        await services.follow_orders(d, [order.order_id])
    assert (await services.get_delivery(d, order.order_id)).state == "CANCELLED"
    current = await store.load_snapshot(order.order_id)
    assert current is not None
    assert (current.status, current.reason, current.version) == ("CANCELLED", "NO_COURIER", 5)
    assert payment.refunded.count(order.order_id) == 1
    assert stock.returned.count(order.order_id) == 1
    mine = [f for f in announced.finals if f.order_id == order.order_id]
    assert [h.status for h in mine[-1].history][-2:] == ["RESTAURANT_ACCEPTED", "CANCELLED"]


# --- the courier's steps over HTTP -----------------------------------------------------------


async def _forever() -> None:
    await asyncio.Event().wait()


@pytest.fixture
async def delivery_http(
    settings: Settings, parts: Parts
) -> AsyncIterator[tuple[httpx.AsyncClient, DeliveryPorts]]:
    """The delivery app's routes over the test's ports, called as the gateway (no consumer:
    it must not join a running system's consumer group)."""
    pool = parts[0]
    app = create_app(load_settings(settings, "delivery_service"))
    ports, _, _ = dispatcher(settings, parts)
    idle = [asyncio.create_task(_forever()) for _ in range(2)]
    redis = aioredis.from_url(settings.redis_url)
    app.state.runtime = DeliveryRuntime(pool, redis, ports, idle[0], idle[1])
    gateway = as_caller(settings, "gateway", SERVICE)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://delivery", headers=gateway
        ) as client:
            yield client, ports
    finally:
        for task in idle:
            task.cancel()
        await redis.aclose()


async def test_pickup_is_refused_until_the_food_is_ready_and_arrival_is_recorded_once(
    parts: Parts, delivery_http: tuple[httpx.AsyncClient, DeliveryPorts]
) -> None:
    pool, store, _ = parts
    client, d = delivery_http
    order = await confirmed_order(store)
    await services.take_in(d, order)
    await kitchen_step(store, order, OrderStatus.RESTAURANT_ACCEPTED, datetime.now(UTC))
    await services.follow_orders(d, [order.order_id])
    courier = (await services.get_delivery(d, order.order_id)).courier_id
    assert courier is not None
    step = {"courier_id": courier}

    arrived = await client.post(f"/deliveries/{order.order_id}/arrive", json=step)
    again = await client.post(f"/deliveries/{order.order_id}/arrive", json=step)
    stranger = await client.post(
        f"/deliveries/{order.order_id}/arrive", json={"courier_id": "nobody"}
    )
    early = await client.post(f"/deliveries/{order.order_id}/pickup", json=step)

    assert arrived.status_code == 200 and arrived.json()["arrived_at"] is not None
    assert again.json()["arrived_at"] == arrived.json()["arrived_at"]
    assert stranger.status_code == 403
    assert early.status_code == 409 and "the food is not ready yet" in early.json()["detail"]
    assert await pool.fetchval(
        "SELECT arrived_at IS NOT NULL FROM deliveries WHERE order_id = $1", order.order_id
    )
    carried = (await client.get(f"/couriers/{courier}")).json()["delivery"]
    assert carried["order_id"] == str(order.order_id) and carried["food_ready"] is False
    assert carried["arrived_at"] == arrived.json()["arrived_at"] and carried["ready_by"]

    await kitchen_step(store, order, OrderStatus.PREPARING)
    await kitchen_step(store, order, OrderStatus.READY_FOR_PICKUP)
    await services.follow_orders(d, [order.order_id])
    picked = await client.post(f"/deliveries/{order.order_id}/pickup", json=step)

    assert picked.status_code == 200 and picked.json()["state"] == "PICKED_UP"
    assert picked.json()["food_ready"] is True
    current = await store.load_snapshot(order.order_id)
    assert current is not None and current.status is OrderStatus.PICKED_UP
    delivered = await client.post(f"/deliveries/{order.order_id}/deliver", json=step)
    assert delivered.json()["state"] == "DELIVERED"


async def test_a_rejection_reason_cannot_be_sent_over_http(
    parts: Parts, delivery_http: tuple[httpx.AsyncClient, DeliveryPorts]
) -> None:
    """Customers cancel with their own reasons only; a restaurant's comes from its event."""
    client, _ = delivery_http
    refused = await client.post(
        f"/deliveries/{uuid.uuid4()}/cancel", json={"reason": "KITCHEN_BUSY"}
    )
    assert refused.status_code == 422


# --- the consumer, over Kafka ----------------------------------------------------------------


@pytest.fixture
def status_topic(settings: Settings) -> Iterator[str]:
    wait_for_kafka(settings.kafka_bootstrap, 60.0)
    name = f"test-status-{uuid.uuid4().hex[:8]}"
    ensure_topics(settings.kafka_bootstrap, 1, [name])
    yield name
    with contextlib.suppress(Exception):  # leftovers are harmless: the names are random
        delete_topics(settings.kafka_bootstrap, [name])


async def test_the_consumer_follows_the_kitchen_from_the_status_events(
    settings: Settings, parts: Parts, status_topic: str
) -> None:
    """Taken in at CONFIRMED, planned at RESTAURANT_ACCEPTED, food ready at READY_FOR_PICKUP,
    cancelled and refunded at RESTAURANT_REJECTED: each read from the order's snapshot."""
    pool, store, _ = parts
    d, payment, stock = dispatcher(settings, parts)
    cooked, rejected = await confirmed_order(store), await confirmed_order(store)
    consumer = BatchConsumer(
        settings,
        [status_topic],
        f"test-delivery-{uuid.uuid4().hex[:8]}",
        followed_orders(d),
        poll_timeout=0.2,
        static_membership=False,
    )

    async def publish(snapshot: OrderSnapshot) -> None:
        await producer.publish(status_topic, snapshot.status_update(), key=str(snapshot.order_id))

    async def until(check: Callable[[], Awaitable[bool]]) -> None:
        async with asyncio.timeout(20):
            while not await check():
                assert not running.done(), running.exception()
                await asyncio.sleep(0.1)

    async def state_of(order: OrderSnapshot) -> Any:
        return await pool.fetchrow(
            "SELECT state, restaurant_id, food_ready FROM deliveries WHERE order_id = $1",
            order.order_id,
        )

    async with EventProducer(settings) as producer, couriers_busy(pool):
        await consumer.start()
        running = asyncio.create_task(consumer.run())
        try:
            await publish(cooked)
            await publish(rejected)
            await until(lambda: _both_exist(pool, cooked, rejected))
            accepted = await kitchen_step(
                store, cooked, OrderStatus.RESTAURANT_ACCEPTED, datetime.now(UTC)
            )
            await publish(accepted)
            await publish(
                await kitchen_step(
                    store,
                    rejected,
                    OrderStatus.RESTAURANT_REJECTED,
                    reason=FailureReason.RESTAURANT_CLOSED,
                )
            )
            await kitchen_step(store, cooked, OrderStatus.PREPARING)
            await publish(await kitchen_step(store, cooked, OrderStatus.READY_FOR_PICKUP))

            async def followed() -> bool:
                done, gone = await state_of(cooked), await state_of(rejected)
                return bool(done["food_ready"] and gone["state"] == "CANCELLED")

            await until(followed)
        finally:
            await consumer.stop()
            await running

    done = await state_of(cooked)
    assert (done["state"], done["restaurant_id"]) == ("WAITING", "tokyo-kitchen")  # all busy
    assert payment.refunded.count(rejected.order_id) == 1
    assert stock.returned.count(rejected.order_id) == 1
    assert cooked.order_id not in payment.refunded


async def _both_exist(pool: asyncpg.Pool, *orders: OrderSnapshot) -> bool:
    found = await pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE order_id = ANY($1::uuid[])",
        [o.order_id for o in orders],
    )
    return bool(found == len(orders))
