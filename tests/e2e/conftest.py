"""The whole system, started once per session: infrastructure plus every service."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import asyncpg
import pytest
import redis.asyncio as aioredis
from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from foodflow.contracts.orders import OrderStatusUpdate, order_status_key
from foodflow.platform.config import Settings
from foodflow.tools import processes

# A short payment step keeps the suite fast and still exercises the delay; short sweeps let the
# chaos test see stuck orders and orphaned reservations recovered within the run.
E2E_ENV = {
    "PAYMENT_DELAY_SECONDS": "0.2",
    "ORDER_TIMEOUT_SECONDS": "20",
    "RESERVATION_TTL_SECONDS": "15",
    "STUCK_ORDER_AFTER_SECONDS": "30",
    "SWEEP_INTERVAL_SECONDS": "2",
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
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "group.id": f"e2e-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
            }
        )
        meta = self.consumer.list_topics(topic, timeout=10)
        parts = [TopicPartition(topic, p, OFFSET_END) for p in meta.topics[topic].partitions]
        self.consumer.assign(parts)
        # Resolve OFFSET_END now, so messages produced after this point are all seen.
        for tp in parts:
            _, high = self.consumer.get_watermark_offsets(tp, timeout=10)
            self.consumer.seek(TopicPartition(topic, tp.partition, high))
        self.by_key: dict[bytes, list[bytes]] = {}

    def _drain(self, timeout: float) -> None:
        for msg in self.consumer.consume(num_messages=1000, timeout=timeout):
            if msg.error() is None:
                self.by_key.setdefault(msg.key() or b"", []).append(msg.value())

    async def until(self, keys: set[str], count_per_key: int, timeout: float = 30.0) -> None:
        wanted = {k.encode() for k in keys}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await asyncio.to_thread(self._drain, 0.2)
            if all(len(self.by_key.get(k, [])) >= count_per_key for k in wanted):
                return
        missing = [k for k in wanted if len(self.by_key.get(k, [])) < count_per_key]
        raise AssertionError(f"{len(missing)} keys lacked {count_per_key} messages on {self.topic}")

    def values(self, key: str) -> list[bytes]:
        return self.by_key.get(key.encode(), [])

    def close(self) -> None:
        self.consumer.close()


@pytest.fixture
def tail(system: Settings) -> Iterator[callable]:  # type: ignore[valid-type]
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


async def wait_row(db: asyncpg.Connection, order_id: uuid.UUID, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = await db.fetchrow("SELECT * FROM orders WHERE order_id = $1", order_id)
        if row is not None:
            return dict(row)
        await asyncio.sleep(0.05)
    raise AssertionError(f"order {order_id} not persisted after {timeout}s")
