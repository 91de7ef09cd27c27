"""Client-side views of orders for the command line: send, follow and look up."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal

import asyncpg
import redis.asyncio as aioredis

from foodflow.contracts import topics
from foodflow.contracts.ids import derive_order_id
from foodflow.contracts.orders import OrderStatusUpdate, ValidatedOrder
from foodflow.orders import records, status_store
from foodflow.platform.config import Settings
from foodflow.platform.db.pool import DATABASE_UNAVAILABLE_ERRORS
from foodflow.platform.errors import FoodflowError
from foodflow.tools.cli_errors import CONNECT_TIMEOUT_SECONDS, Unavailable, postgres
from foodflow.tools.kafka_io import TopicReader, publish

SEED_ORDER_LINE = (
    '{"user_id": "user-001", "items": [{"item_id": "sushi-set", "quantity": 1, "price": 25.50}, '
    '{"item_id": "pho-bo", "quantity": 2, "price": 9.00}]}'
)


def publish_raw(
    settings: Settings, value: bytes, key: str | None = None, *, timeout: float = 30.0
) -> tuple[int, int]:
    """Publish one message on `validated_orders`; returns its (partition, offset).
    PublishError when it is not acknowledged within `timeout` seconds."""
    return publish(settings, topics.VALIDATED_ORDERS, value, key, timeout=timeout)


def send_order(settings: Settings, order: ValidatedOrder, *, timeout: float = 30.0) -> uuid.UUID:
    order_id = order.order_id or uuid.uuid4()
    order = order.model_copy(update={"order_id": order_id})
    publish_raw(settings, order.model_dump_json().encode(), key=str(order_id), timeout=timeout)
    return order_id


def send_seed_line(settings: Settings) -> uuid.UUID:
    """The seed's console-producer line, as is (no key, no id); its id is where it lands."""
    partition, offset = publish_raw(settings, SEED_ORDER_LINE.encode())
    return derive_order_id(topics.VALIDATED_ORDERS, partition, offset)


def finished(update: OrderStatusUpdate) -> bool:
    """Whether nothing more is to come for the order: it ended (DELIVERED, FAILED,
    CANCELLED), or it left the saga with no address (the seed's orders end CONFIRMED: no
    kitchen cooks them, no courier takes them)."""
    return update.status.is_terminal or (
        update.status.left_saga and update.delivery_address is None
    )


def follow(
    settings: Settings, order_id: uuid.UUID, since_ms: int, timeout: float = 30.0
) -> Iterator[OrderStatusUpdate]:
    """Yield the order's status events from `order_status_updates` until a final one: through
    the kitchen's and the courier's steps for an order with an address (`finished`)."""
    with TopicReader(
        settings, topics.ORDER_STATUS_UPDATES, since_ms, group="foodflow-cli"
    ) as reader:
        key = str(order_id).encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = reader.poll(0.2)
            if msg is None or msg.key() != key:
                continue
            update = OrderStatusUpdate.model_validate_json(msg.value() or b"")
            yield update
            if finished(update):
                return
        raise FoodflowError(f"order {order_id} reached no final state within {timeout:.0f}s")


def current_status(settings: Settings, order_id: uuid.UUID) -> OrderStatusUpdate | None:
    """The order's current status: from the Redis cache, else from PostgreSQL's order state."""

    async def read() -> OrderStatusUpdate | None:
        client = aioredis.Redis.from_url(
            settings.redis_url, socket_timeout=5, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS
        )
        conn = await _connect(settings)
        try:
            cache = status_store.StatusCache(client, settings.order_status_ttl_seconds)
            return await status_store.StatusReader(conn, cache).status(order_id)
        finally:
            await conn.close()
            await client.aclose()

    return asyncio.run(read())


async def stored_order(settings: Settings, order_id: uuid.UUID) -> dict[str, object] | None:
    """The order's row in PostgreSQL with its items and timeline, or None."""
    conn = await _connect(settings)
    try:
        record = await records.read_order(conn, order_id)
    finally:
        await conn.close()
    if record is None:
        return None
    return {
        **vars(record),
        "items": [i.model_dump() for i in record.items],
        "history": [h.model_dump() for h in record.history],
    }


async def _connect(settings: Settings) -> asyncpg.Connection:
    """A connection for one look-up; Unavailable (one line, exit 3) when PostgreSQL does not
    answer within the command line's short timeout (twice the TCP probe's: it logs in too)."""
    try:
        return await asyncpg.connect(settings.postgres_dsn, timeout=2 * CONNECT_TIMEOUT_SECONDS)
    except DATABASE_UNAVAILABLE_ERRORS as exc:
        raise Unavailable([postgres(settings)], cause=str(exc)) from exc


def money(value: Decimal | None, currency: str | None = "EUR") -> str:
    return "-" if value is None else f"{value:.2f} {currency or ''}".strip()
