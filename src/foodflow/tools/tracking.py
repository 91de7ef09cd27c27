"""Client-side views of orders for the command line: send, follow and look up."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from decimal import Decimal

import asyncpg
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from foodflow.contracts import topics
from foodflow.contracts.ids import derive_order_id
from foodflow.contracts.orders import OrderStatusUpdate, ValidatedOrder, order_status_key
from foodflow.platform.config import Settings
from foodflow.platform.errors import FoodflowError, PublishError

SEED_ORDER_LINE = (
    '{"user_id": "user-001", "items": [{"item_id": "sushi-set", "quantity": 1, "price": 25.50}, '
    '{"item_id": "pho-bo", "quantity": 2, "price": 9.00}]}'
)


def publish_raw(settings: Settings, value: bytes, key: str | None = None) -> tuple[int, int]:
    """Publish one message on `validated_orders`; returns its (partition, offset)."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True})
    where: list[tuple[int, int]] = []
    errors: list[str] = []

    def delivered(err: object, msg: object) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            where.append((msg.partition(), msg.offset()))  # type: ignore[attr-defined]

    producer.produce(topics.VALIDATED_ORDERS, value=value, key=key, on_delivery=delivered)
    producer.flush(30)
    if errors or not where:
        raise PublishError(errors[0] if errors else "no delivery report within 30s")
    return where[0]


def send_order(settings: Settings, order: ValidatedOrder) -> uuid.UUID:
    order_id = order.order_id or uuid.uuid4()
    order = order.model_copy(update={"order_id": order_id})
    publish_raw(settings, order.model_dump_json().encode(), key=str(order_id))
    return order_id


def send_seed_line(settings: Settings) -> uuid.UUID:
    """The seed's console-producer line, as is (no key, no id); its id is where it lands."""
    partition, offset = publish_raw(settings, SEED_ORDER_LINE.encode())
    return derive_order_id(topics.VALIDATED_ORDERS, partition, offset)


def follow(
    settings: Settings, order_id: uuid.UUID, since_ms: int, timeout: float = 30.0
) -> Iterator[OrderStatusUpdate]:
    """Yield the order's status events from `order_status_updates` until a final one."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"foodflow-cli-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    try:
        meta = consumer.list_topics(topics.ORDER_STATUS_UPDATES, timeout=10)
        numbers = list(meta.topics[topics.ORDER_STATUS_UPDATES].partitions)
        # The end of each partition *before* asking by time: a partition with nothing since
        # `since_ms` yet starts there, so an event appended meanwhile is still read (starting
        # at "the end, whenever the fetch happens" missed the first events of a fast order).
        ends = {
            p: consumer.get_watermark_offsets(
                TopicPartition(topics.ORDER_STATUS_UPDATES, p), timeout=10
            )[1]
            for p in numbers
        }
        starts = consumer.offsets_for_times(
            [TopicPartition(topics.ORDER_STATUS_UPDATES, p, since_ms) for p in numbers], timeout=10
        )
        consumer.assign(
            [
                TopicPartition(
                    tp.topic, tp.partition, tp.offset if tp.offset >= 0 else ends[tp.partition]
                )
                for tp in starts
            ]
        )
        key = str(order_id).encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error() is not None or msg.key() != key:
                continue
            update = OrderStatusUpdate.model_validate_json(msg.value() or b"")
            yield update
            if update.status.left_saga:
                return
        raise FoodflowError(f"order {order_id} reached no final state within {timeout:.0f}s")
    finally:
        consumer.close()


def redis_status(settings: Settings, order_id: uuid.UUID) -> OrderStatusUpdate | None:
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        raw = client.get(order_status_key(order_id))
    finally:
        client.close()
    return OrderStatusUpdate.model_validate_json(raw) if raw else None


async def stored_order(settings: Settings, order_id: uuid.UUID) -> dict[str, object] | None:
    """The order's row in PostgreSQL with its items and timeline, or None."""
    conn = await asyncpg.connect(settings.postgres_dsn, timeout=10)
    try:
        row = await conn.fetchrow("SELECT * FROM orders WHERE order_id = $1", order_id)
        if row is None:
            return None
        items = await conn.fetch(
            "SELECT item_id, quantity, unit_price, line_total FROM order_items"
            " WHERE order_id = $1 ORDER BY item_id",
            order_id,
        )
        history = await conn.fetch(
            "SELECT version, status, reason, at FROM order_status_history"
            " WHERE order_id = $1 ORDER BY version",
            order_id,
        )
    finally:
        await conn.close()
    return {**dict(row), "items": [dict(i) for i in items], "history": [dict(h) for h in history]}


def money(value: Decimal | None, currency: str | None = "EUR") -> str:
    return "-" if value is None else f"{value:.2f} {currency or ''}".strip()
