"""The whole system, started once per session: infrastructure plus every service — the test
profile's (`tests/profile.py`: ports 18000-18007, state `.state/test`), so the settings below
are only ever those of the suite's own services, never a `make run` system's."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from foodflow.contracts.orders import OrderStatusUpdate, ValidatedOrder, order_status_key
from foodflow.platform.config import Settings
from foodflow.tools import processes
from foodflow.tools.kafka_io import TopicReader

# A short payment step keeps the suite fast and still exercises the delay; short sweeps let the
# chaos test see stuck orders and orphaned reservations recovered within the run. Every test
# client is 127.0.0.1: the per-address throttles are tested in tests/security, not here.
E2E_ENV = {
    "LOGIN_ATTEMPTS_PER_ADDRESS_PER_MINUTE": "1000",
    "SIGNUPS_PER_ADDRESS_PER_MINUTE": "1000",
    "PAYMENT_DELAY_SECONDS": "0.2",
    "ORDER_TIMEOUT_SECONDS": "20",
    # Longer than an order can wait out an outage (the grace, plus its own timeout): a
    # reservation given back or an order swept while its saga still waits would fail it.
    "RESERVATION_TTL_SECONDS": "75",
    "STUCK_ORDER_AFTER_SECONDS": "75",
    "SWEEP_INTERVAL_SECONDS": "2",
    # Long enough for test_outage's 10 s stop of inventory, and a restart slowed by a busy
    # machine (measured: 20 s at a load of 15 on 2 cores), to fail no order.
    "DEPENDENCY_GRACE_SECONDS": "40",
    # A kitchen that does not answer: long enough for a test's staff to act, short enough for
    # the timeout test to see it (RESTAURANT_TIMEOUT).
    "RESTAURANT_ACCEPT_TIMEOUT_SECONDS": "15",
    # The dispatch plans rides at the speed the simulator's couriers ride (as `foodflow up`
    # sets it when it runs the simulator), so that they reach the kitchen when it is ready.
    "COURIER_SPEED_KMH": "3600",
}


@pytest.fixture(scope="session")
def system(infra: Settings) -> Iterator[Settings]:
    already = {s.name for s in processes.status(infra) if s.running}
    processes.up(infra, env=E2E_ENV)
    yield infra
    # Leave running what a developer had started; stop what this session started.
    for svc in processes.all_services(infra):
        if svc.name not in already:
            svc.stop()


@pytest.fixture
async def db(system: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(system.postgres_dsn)
    yield conn
    await conn.close()


@pytest.fixture
async def redis_client(system: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(system.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def test_item(db: asyncpg.Connection) -> AsyncIterator[tuple[str, Decimal]]:
    """A menu item of this test's own with stock 10, so tests never fight over seeded stock."""
    item_id = f"test-{uuid.uuid4().hex[:10]}"
    price = Decimal("4.20")
    await db.execute(
        "INSERT INTO inventory_items (item_id, name, price, stock)"
        " VALUES ($1, 'test item', $2, 10)",
        item_id,
        price,
    )
    yield item_id, price


class TopicTail:
    """Reads a topic from 'now' on, in a background-free way: call `until()` to drain."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        # From the end as of now, so messages produced after this point are all seen.
        self.reader = TopicReader(settings, topic, since_ms=None, group="e2e")
        self.by_key: dict[bytes, list[bytes]] = {}

    def _drain(self, timeout: float) -> None:
        for msg in self.reader.consume(1000, timeout):
            self.by_key.setdefault(msg.key() or b"", []).append(msg.value() or b"")

    async def until(self, keys: set[str], count_per_key: int, timeout: float = 30.0) -> None:
        wanted = {k.encode() for k in keys}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await asyncio.to_thread(self._drain, 0.2)
            if all(len(self.by_key.get(k, [])) >= count_per_key for k in wanted):
                return
        missing = [k for k in wanted if len(self.by_key.get(k, [])) < count_per_key]
        raise AssertionError(f"{len(missing)} keys lacked {count_per_key} messages on {self.topic}")

    async def poll(self, timeout: float = 0.5) -> None:
        """Read what has arrived (waiting up to `timeout`)."""
        await asyncio.to_thread(self._drain, timeout)

    def values(self, key: str) -> list[bytes]:
        return self.by_key.get(key.encode(), [])

    def close(self) -> None:
        self.reader.close()


# What the `tail` fixture gives a test: open a TopicTail on a topic (closed after the test).
Tail = Callable[[str], TopicTail]


@pytest.fixture
def tail(system: Settings) -> Iterator[Tail]:
    tails: list[TopicTail] = []

    def make(topic: str) -> TopicTail:
        t = TopicTail(system, topic)
        tails.append(t)
        return t

    yield make
    for t in tails:
        t.close()


async def wait_final(
    redis_client: aioredis.Redis, order_id: uuid.UUID | str, timeout: float = 30.0
) -> OrderStatusUpdate:
    """Poll Redis until the order is in a final state."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        raw = await redis_client.get(order_status_key(order_id))
        if raw:
            last = OrderStatusUpdate.model_validate_json(raw)
            if last.status.left_saga:
                return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"order {order_id} not final after {timeout}s (last: {last})")


def sent_id(order: ValidatedOrder) -> uuid.UUID:
    """The id a test gave the order it sends (the message's `order_id` is optional)."""
    if order.order_id is None:
        raise ValueError("test orders are built with their order_id")
    return order.order_id


async def wait_row(
    db: asyncpg.Connection, order_id: uuid.UUID, timeout: float = 30.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = await db.fetchrow("SELECT * FROM orders WHERE order_id = $1", order_id)
        if row is not None:
            return dict(row)
        await asyncio.sleep(0.05)
    raise AssertionError(f"order {order_id} not persisted after {timeout}s")


async def wait_stock(
    db: asyncpg.Connection, item_id: str, expected: int, timeout: float = 10.0
) -> None:
    """Until the item's stock is `expected`. A failed order's stock comes back just after its
    FAILED is stored and announced: the saga decides the order's end first, then undoes."""
    deadline = time.monotonic() + timeout
    stock = None
    while time.monotonic() < deadline:
        stock = await db.fetchval("SELECT stock FROM inventory_items WHERE item_id = $1", item_id)
        if stock == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"stock of {item_id} is {stock}, not {expected}, after {timeout}s")
