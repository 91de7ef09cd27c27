"""The restaurant service over HTTP (in-process ASGI) against the real PostgreSQL, Redis and
Kafka: a confirmed order taken in as a ticket, the staff accepting it (the order's state in
PostgreSQL moves to RESTAURANT_ACCEPTED with the kitchen's plan, announced on
order_status_updates), another restaurant's staff refused, the timeout sweep, a closed
restaurant and an unavailable item rejecting at once, hostile bodies refused.

The app runs with the routes' runtime built here (real repository, order state store and Kafka
announcer; a recording catalogue) but no consumer: the running system's consumer group is not
to be joined. Intake is the consumer's use case, called with the event it would have read.
Tests own their rows: orders of user `restaurant-test`, a kitchen of their own with an item of
its own (so that no other run's tickets fill its capacity), all removed afterwards.
"""

from __future__ import annotations

import asyncio
import time as clock
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from foodflow.contracts import topics
from foodflow.contracts.orders import (
    DeliveryAddress,
    OrderSnapshot,
    OrderStatus,
    OrderStatusUpdate,
    PricedItem,
    StatusChange,
)
from foodflow.orders.announcer import KafkaAnnouncer
from foodflow.orders.status_store import OrderStateStore, StatusCache
from foodflow.platform.config import Settings
from foodflow.platform.db.migrations import migrate_pool
from foodflow.platform.db.pool import create_pool
from foodflow.platform.kafka.admin import delete_topics, ensure_topics, wait_for_kafka
from foodflow.platform.kafka.consumer import BatchConsumer
from foodflow.platform.kafka.producer import EventProducer
from foodflow.restaurant_service import services
from foodflow.restaurant_service.app import (
    MIGRATIONS,
    SERVICE,
    RestaurantRuntime,
    create_app,
    order_events,
)
from foodflow.restaurant_service.order_status import OrderStatusMover
from foodflow.restaurant_service.repository import KitchenRepository
from foodflow.tools.kafka_io import read_since
from foodflow.tools.secrets import load_settings

from ..service_auth import as_caller

pytestmark = pytest.mark.integration
USER = "restaurant-test"


class RecordingCatalogue:
    """The inventory's side of availability, recorded (the inventory service is not run
    here; its endpoint has tests of its own)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    async def set_availability(self, item_id: str, available: bool) -> None:
        self.calls.append((item_id, available))


@dataclass
class Restaurants:
    client: httpx.AsyncClient
    ports: services.RestaurantPorts
    store: OrderStateStore
    pool: asyncpg.Pool
    catalogue: RecordingCatalogue
    kitchen_id: str  # a kitchen of this test's own, cooking `item_id` alone
    item_id: str

    async def confirmed(self, *items: str) -> OrderSnapshot:
        """A confirmed order with an address, in the order state store."""
        now = datetime.now(UTC)
        steps = (OrderStatus.RECEIVED, OrderStatus.PROCESSING, OrderStatus.CONFIRMED)
        order = OrderSnapshot(
            order_id=uuid.uuid4(),
            user_id=USER,
            status=OrderStatus.CONFIRMED,
            version=3,
            created_at=now,
            updated_at=now,
            delivery_address=DeliveryAddress(address="Torstr. 1", lat=52.53, lon=13.40),
            items=[PricedItem(item_id=i, quantity=1, unit_price=Decimal("9.00")) for i in items],
            history=[StatusChange(status=s, version=v, at=now) for v, s in enumerate(steps, 1)],
        )
        await self.store.save(order)
        return order

    async def take_in(self, order: OrderSnapshot) -> None:
        """What the consumer does with the order's CONFIRMED event."""
        await services.order_events(self.ports, [order.status_update()])

    async def order(self, order_id: UUID) -> OrderSnapshot:
        snapshot = await self.store.load_snapshot(order_id)
        assert snapshot is not None
        return snapshot


async def _idle() -> None:
    await asyncio.Event().wait()


@pytest.fixture
async def restaurants(settings: Settings) -> AsyncIterator[Restaurants]:
    pool = await create_pool(settings, min_size=1, max_size=4)
    await migrate_pool(pool, SERVICE, MIGRATIONS)
    kitchen_id, item_id = f"test-{uuid.uuid4().hex[:8]}", f"test-{uuid.uuid4().hex[:8]}"
    await pool.execute(
        "INSERT INTO kitchens (restaurant_id, name, lat, lon)"
        " VALUES ($1, 'Test Kitchen', 52.5, 13.4)",
        kitchen_id,
    )
    await pool.execute(
        "INSERT INTO kitchen_menu (item_id, restaurant_id, prep_minutes) VALUES ($1, $2, 9)",
        item_id,
        kitchen_id,
    )
    redis_client = aioredis.from_url(settings.redis_url)
    store = OrderStateStore(pool, StatusCache(redis_client, 600))
    producer = EventProducer(settings)
    await producer.start()
    catalogue = RecordingCatalogue()
    ports = services.RestaurantPorts(
        kitchens=KitchenRepository(pool),
        statuses=OrderStatusMover(store, KafkaAnnouncer(producer)),
        catalogue=catalogue,
        accept_timeout_seconds=settings.restaurant_accept_timeout_seconds,
    )
    app = create_app(load_settings(settings, SERVICE))
    idle = [asyncio.create_task(_idle()) for _ in range(2)]
    app.state.runtime = RestaurantRuntime(pool, ports, idle[0], idle[1])
    gateway = as_caller(settings, "gateway", SERVICE)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://restaurants", headers=gateway
        ) as client:
            yield Restaurants(client, ports, store, pool, catalogue, kitchen_id, item_id)
    finally:
        for task in idle:
            task.cancel()
        await pool.execute(
            "DELETE FROM kitchen_tickets WHERE order_id IN"
            " (SELECT order_id FROM order_state WHERE snapshot::jsonb ->> 'user_id' = $1)"
            " OR restaurant_id = $2",
            USER,
            kitchen_id,
        )
        await pool.execute("DELETE FROM kitchen_menu WHERE restaurant_id = $1", kitchen_id)
        await pool.execute("DELETE FROM kitchens WHERE restaurant_id = $1", kitchen_id)
        await producer.stop()
        await redis_client.aclose()
        await pool.close()


async def announced(settings: Settings, since_ms: int, order_id: UUID) -> list[OrderStatusUpdate]:
    """The order's events on order_status_updates from `since_ms` on."""
    messages = await asyncio.to_thread(read_since, settings, topics.ORDER_STATUS_UPDATES, since_ms)
    return [
        OrderStatusUpdate.model_validate_json(m.value() or b"")
        for m in messages
        if m.key() == str(order_id).encode()
    ]


async def test_the_seeded_restaurants_are_listed_open_with_their_menus(
    restaurants: Restaurants,
) -> None:
    answer = await restaurants.client.get("/restaurants")
    assert answer.status_code == 200, answer.text
    listed = {r["restaurant_id"]: r for r in answer.json()["restaurants"]}
    assert {"tokyo-kitchen", "saigon-street", "napoli-oven", "central-kitchen"} <= set(listed)
    tokyo = listed["tokyo-kitchen"]
    assert (tokyo["timezone"], tokyo["capacity"]) == ("Europe/Berlin", 20)
    assert {"sushi-set", "ramen", "gyoza", "green-tea"} == {i["item_id"] for i in tokyo["items"]}
    assert {i["item_id"] for i in listed["central-kitchen"]["items"]} >= {"cheeseburger"}
    check = await restaurants.client.post("/check_order", json={"item_ids": ["pho-bo", "ramen"]})
    assert check.json()["restaurant_id"] == "saigon-street", check.text


async def test_a_confirmed_order_is_taken_in_and_accepted(
    restaurants: Restaurants, settings: Settings
) -> None:
    kitchen = restaurants.kitchen_id
    order = await restaurants.confirmed(restaurants.item_id, "no-menu-item")
    await restaurants.take_in(order)
    path = f"/restaurants/{kitchen}/tickets/{order.order_id}"
    ticket = (await restaurants.client.get(path)).json()
    assert (ticket["state"], ticket["restaurant_id"]) == ("PENDING", kitchen)
    assert ticket["suggested_ready_in_minutes"] == 10  # the default's 10 minutes, over 9
    pending = await restaurants.client.get(f"/restaurants/{kitchen}/tickets?state=PENDING")
    assert [t["order_id"] for t in pending.json()["tickets"]] == [str(order.order_id)]

    since = int(clock.time() * 1000) - 1000
    accepted = await restaurants.client.post(f"{path}/accept", json={"ready_in_minutes": 15})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["state"] == "ACCEPTED"
    current = await restaurants.order(order.order_id)
    assert (current.status, current.version) == (OrderStatus.RESTAURANT_ACCEPTED, 4)
    plan = current.kitchen
    assert plan is not None
    assert (plan.restaurant_id, plan.restaurant_name) == (kitchen, "Test Kitchen")
    assert (plan.lat, plan.lon) == (52.5, 13.4)
    expected = datetime.now(UTC) + timedelta(minutes=15)
    assert abs((plan.ready_by - expected).total_seconds()) < 30
    events = await announced(settings, since, order.order_id)
    assert [(e.status, e.version) for e in events] == [(OrderStatus.RESTAURANT_ACCEPTED, 4)]
    assert events[0].kitchen == plan

    # A repeat changes nothing; a step its state cannot take is a conflict.
    again = await restaurants.client.post(f"{path}/accept", json={"ready_in_minutes": 40})
    assert again.json()["ready_by"] == accepted.json()["ready_by"]
    refused = await restaurants.client.post(f"{path}/reject", json={"reason": "KITCHEN_BUSY"})
    assert refused.status_code == 409, refused.text
    assert (await restaurants.order(order.order_id)).version == 4

    ready = await restaurants.client.post(f"{path}/ready")
    assert ready.json()["state"] == "READY"
    final = await restaurants.order(order.order_id)
    assert [h.status for h in final.history][-2:] == [
        OrderStatus.PREPARING,
        OrderStatus.READY_FOR_PICKUP,
    ]
    assert final.kitchen == plan


async def test_the_consumer_takes_in_confirmed_orders_and_closes_cancelled_ones(
    restaurants: Restaurants, settings: Settings
) -> None:
    """The app's handler over real Kafka messages, on a topic of this test's own (the shared
    order_status_updates and the service's group are left alone): a CONFIRMED event becomes a
    ticket, a CANCELLED one closes it, events that do not parse or concern no kitchen pass."""
    await asyncio.to_thread(wait_for_kafka, settings.kafka_bootstrap, 60.0)
    topic = f"test-status-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(ensure_topics, settings.kafka_bootstrap, 1, [topic])
    order = await restaurants.confirmed(restaurants.item_id)
    cancelled = order.model_copy(update={"status": OrderStatus.CANCELLED, "version": 4})
    consumer = BatchConsumer(
        settings,
        [topic],
        f"test-restaurant-{uuid.uuid4().hex[:8]}",
        order_events(restaurants.ports),
        poll_timeout=0.2,
        config={"auto.offset.reset": "earliest"},
        static_membership=False,
    )
    path = f"/restaurants/{restaurants.kitchen_id}/tickets/{order.order_id}"
    try:
        async with EventProducer(settings) as producer:
            key = str(order.order_id)
            await producer.publish(topic, b"not an event", key=key)
            await producer.publish(topic, order.status_update(), key=key)
            await consumer.start()
            running = asyncio.create_task(consumer.run())
            async with asyncio.timeout(45):
                while (await restaurants.client.get(path)).status_code == 404:
                    assert not running.done(), "the consumer loop died"
                    await asyncio.sleep(0.1)
            assert (await restaurants.client.get(path)).json()["state"] == "PENDING"
            await producer.publish(topic, cancelled.status_update(), key=key)
            async with asyncio.timeout(45):
                while (await restaurants.client.get(path)).json()["state"] == "PENDING":
                    assert not running.done(), "the consumer loop died"
                    await asyncio.sleep(0.1)
            assert (await restaurants.client.get(path)).json()["state"] == "CANCELLED"
    finally:
        await consumer.stop()
        await asyncio.to_thread(delete_topics, settings.kafka_bootstrap, [topic])


async def test_another_restaurant_does_not_see_the_order(restaurants: Restaurants) -> None:
    order = await restaurants.confirmed(restaurants.item_id)
    await restaurants.take_in(order)
    mine = await restaurants.client.get(
        f"/restaurants/{restaurants.kitchen_id}/tickets/{order.order_id}"
    )
    assert mine.status_code == 200
    other = f"/restaurants/saigon-street/tickets/{order.order_id}"
    assert (await restaurants.client.get(other)).status_code == 404
    refused = await restaurants.client.post(f"{other}/accept", json={"ready_in_minutes": 5})
    assert refused.status_code == 404, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    listed = await restaurants.client.get("/restaurants/saigon-street/tickets")
    assert str(order.order_id) not in {t["order_id"] for t in listed.json()["tickets"]}
    unknown = await restaurants.client.post(f"/restaurants/nowhere/tickets/{order.order_id}/ready")
    assert unknown.status_code == 404
    assert (await restaurants.order(order.order_id)).status is OrderStatus.CONFIRMED


async def test_an_order_nobody_answers_is_rejected_for_the_timeout(
    restaurants: Restaurants,
) -> None:
    order = await restaurants.confirmed(restaurants.item_id)
    await restaurants.take_in(order)
    await restaurants.pool.execute(
        "UPDATE kitchen_tickets SET received_at = now() - interval '30 days' WHERE order_id = $1",
        order.order_id,
    )
    path = f"/restaurants/{restaurants.kitchen_id}/tickets/{order.order_id}"
    for _ in range(20):  # stale tickets of others may come first, fifty a round
        await services.expire_pending(restaurants.ports)
        ticket = (await restaurants.client.get(path)).json()
        if ticket["state"] != "PENDING":
            break
    assert (ticket["state"], ticket["reason"]) == ("REJECTED", "RESTAURANT_TIMEOUT")
    current = await restaurants.order(order.order_id)
    rejected = [h for h in current.history if h.status is OrderStatus.RESTAURANT_REJECTED]
    assert [(h.version, h.reason) for h in rejected] == [(4, "RESTAURANT_TIMEOUT")]


async def test_a_closed_restaurant_and_an_unavailable_item_reject_at_once(
    restaurants: Restaurants,
) -> None:
    kitchen, item = restaurants.kitchen_id, restaurants.item_id
    closed = await restaurants.client.put(
        f"/restaurants/{kitchen}/opening", json={"accepting": False}
    )
    assert closed.status_code == 200, closed.text
    assert (closed.json()["accepting"], closed.json()["open_now"]) == (False, False)
    check = await restaurants.client.post("/check_order", json={"item_ids": [item]})
    assert (check.json()["restaurant_id"], check.json()["refusal"]) == (
        kitchen,
        "RESTAURANT_CLOSED",
    )
    order = await restaurants.confirmed(item)
    await restaurants.take_in(order)
    current = await restaurants.order(order.order_id)
    assert (current.status, current.reason) == (
        OrderStatus.RESTAURANT_REJECTED,
        "RESTAURANT_CLOSED",
    )
    assert current.detail == "Test Kitchen is closed"

    reopened = await restaurants.client.put(
        f"/restaurants/{kitchen}/opening", json={"accepting": True}
    )
    assert reopened.json()["open_now"] is True
    marked = await restaurants.client.put(
        f"/restaurants/{kitchen}/items/{item}/availability", json={"available": False}
    )
    assert marked.status_code == 200, marked.text
    assert marked.json() == {"item_id": item, "prep_minutes": 9.0, "available": False}
    assert restaurants.catalogue.calls == [(item, False)]
    order = await restaurants.confirmed(item)
    await restaurants.take_in(order)
    current = await restaurants.order(order.order_id)
    assert (current.status, current.reason) == (OrderStatus.RESTAURANT_REJECTED, "ITEM_UNAVAILABLE")
    ticket = await restaurants.client.get(f"/restaurants/{kitchen}/tickets/{order.order_id}")
    assert (ticket.json()["state"], ticket.json()["reason"]) == ("REJECTED", "ITEM_UNAVAILABLE")
    # An item of another restaurant's menu, or of none, is not this restaurant's to mark.
    for other in ("ramen", "no-such-item"):
        answer = await restaurants.client.put(
            f"/restaurants/{kitchen}/items/{other}/availability", json={"available": False}
        )
        assert answer.status_code == 404, answer.text
    assert restaurants.catalogue.calls == [(item, False)]


HOSTILE: list[tuple[str, str, Any]] = [
    ("POST", "/check_order", {"item_ids": [f"item-{n}" for n in range(5000)]}),
    ("POST", "/check_order", {"item_ids": []}),
    ("POST", "/check_order", {"item_ids": ["../../etc/passwd"]}),
    ("POST", "/check_order", {"item_ids": "sushi-set"}),
    ("POST", "/restaurants/{kitchen}/tickets/{oid}/accept", {"ready_in_minutes": -1}),
    ("POST", "/restaurants/{kitchen}/tickets/{oid}/accept", {"ready_in_minutes": 1e308}),
    ("POST", "/restaurants/{kitchen}/tickets/{oid}/accept", {}),
    ("POST", "/restaurants/{kitchen}/tickets/{oid}/delay", {"ready_in_minutes": "soon"}),
    ("POST", "/restaurants/{kitchen}/tickets/{oid}/reject", {"reason": "BORED"}),
    (
        "POST",
        "/restaurants/{kitchen}/tickets/{oid}/reject",
        {"reason": "KITCHEN_BUSY", "detail": "nul \u0000 byte"},
    ),
    (
        "POST",
        "/restaurants/{kitchen}/tickets/{oid}/reject",
        {"reason": "KITCHEN_BUSY", "detail": "x" * 5000},
    ),
    ("POST", "/restaurants/tokyo-kitchen/tickets/not-a-uuid/ready", None),
    ("GET", "/restaurants/Tokyo%20Kitchen%3B%20DROP", None),
    ("PUT", "/restaurants/{kitchen}/opening", {"opens_at": "25:00", "closes_at": "26:00"}),
    ("PUT", "/restaurants/{kitchen}/opening", {"opens_at": "10:00"}),
    ("PUT", "/restaurants/{kitchen}/opening", {"opens_at": "10:00+02:00", "closes_at": "11:00"}),
    ("PUT", "/restaurants/{kitchen}/items/{item}/availability", {"available": "maybe"}),
    ("GET", "/restaurants/{kitchen}/tickets?state=EATEN", None),
]


@pytest.mark.parametrize(("method", "path", "body"), HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_bodies_are_refused_with_422(
    restaurants: Restaurants, method: str, path: str, body: Any
) -> None:
    kitchen = restaurants.kitchen_id
    order = await restaurants.confirmed(restaurants.item_id)
    await restaurants.take_in(order)
    where = path.format(oid=order.order_id, kitchen=kitchen, item=restaurants.item_id)
    answer = await restaurants.client.request(method, where, json=cast(Any, body))
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["status"] == 422
    assert (await restaurants.order(order.order_id)).status is OrderStatus.CONFIRMED
    mine = (await restaurants.client.get(f"/restaurants/{kitchen}")).json()
    assert [i["available"] for i in mine["items"]] == [True]
    assert (mine["opens_at"], mine["closes_at"], mine["accepting"]) == (
        "00:00",
        "00:00",
        True,
    )


async def test_the_order_manager_may_check_an_order_but_not_take_steps(
    restaurants: Restaurants, settings: Settings
) -> None:
    order_manager = as_caller(settings, "order_manager", SERVICE)
    check = await restaurants.client.post(
        "/check_order", json={"item_ids": ["ramen"]}, headers=order_manager
    )
    assert check.status_code == 200 and check.json()["open_now"] is True
    listed = await restaurants.client.get("/restaurants", headers=order_manager)
    assert listed.status_code == 403
