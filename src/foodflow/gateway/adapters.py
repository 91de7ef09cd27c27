"""The gateway's ports over the outside world: order state (Redis, PostgreSQL), the delivery
service (HTTP), Kafka and the login-attempt counters (Redis)."""

from __future__ import annotations

import asyncio
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis
from pydantic import BaseModel, TypeAdapter

from foodflow.contracts.delivery import CancelDelivery, CourierStep, CourierView, DeliveryView
from foodflow.contracts.orders import OrderSnapshot, OrderStatusUpdate, ValidatedOrder
from foodflow.gateway.services import DeliveryRefused, DeliveryUnavailable
from foodflow.orders import records, status_store
from foodflow.orders.records import OrderRecord
from foodflow.platform.config import Settings
from foodflow.platform.errors import FoodflowError
from foodflow.platform.http.client import RequestRefused, ServiceClient
from foodflow.platform.http.service_auth import ServiceTokens
from foodflow.platform.kafka.producer import EventProducer

# A courier step or a cancellation waits for the delivery service's own work (a refund).
DELIVERY_TIMEOUT_SECONDS = 10.0
# The dashboard's courier panel would rather say "not reachable" than keep the page waiting.
COURIERS_TIMEOUT_SECONDS = 2.0
LOGIN_WINDOW_SECONDS = 60

_COURIERS = TypeAdapter(list[CourierView])


class OrderState:
    """`OrderViews`: the live status through `orders.status_store`, the stored order through
    `orders.records`."""

    def __init__(self, redis: aioredis.Redis, pool: asyncpg.Pool) -> None:
        self._redis = redis
        self._pool = pool

    async def snapshot(self, order_id: UUID) -> OrderSnapshot | None:
        return await status_store.read_snapshot(self._redis, order_id)

    async def status(self, order_id: UUID) -> OrderStatusUpdate | None:
        return await status_store.read_status(self._redis, order_id)

    async def is_live(self, order_id: UUID) -> bool:
        return await status_store.has_status(self._redis, order_id)

    async def record(self, order_id: UUID) -> OrderRecord | None:
        return await records.read_order(self._pool, order_id)


class DeliveryClient(ServiceClient):
    """`Deliveries` over the delivery service's API. Steps are sent once: a courier or customer
    who sees an error tries again themselves."""

    def __init__(self, settings: Settings, tokens: ServiceTokens) -> None:
        bounded = settings.model_copy(update={"http_timeout_seconds": DELIVERY_TIMEOUT_SECONDS})
        super().__init__("delivery", settings.delivery_url, bounded, tokens, "delivery_service")

    async def cancel(self, order_id: UUID) -> None:
        await self._step(f"/deliveries/{order_id}/cancel", CancelDelivery())

    async def pick_up(self, order_id: UUID, courier_id: str | None) -> None:
        await self._step(f"/deliveries/{order_id}/pickup", CourierStep(courier_id=courier_id))

    async def deliver(self, order_id: UUID, courier_id: str | None) -> None:
        await self._step(f"/deliveries/{order_id}/deliver", CourierStep(courier_id=courier_id))

    async def couriers(self) -> list[CourierView]:
        try:
            async with asyncio.timeout(COURIERS_TIMEOUT_SECONDS):
                return await self.get("/couriers", _COURIERS, attempts=1)
        except (FoodflowError, ValueError, TimeoutError) as exc:
            raise DeliveryUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def _step(self, path: str, body: BaseModel) -> None:
        try:
            await self.post(path, body, DeliveryView, attempts=1)
        except RequestRefused as exc:
            raise DeliveryRefused(exc.status, exc.message) from None
        except FoodflowError as exc:
            raise DeliveryUnavailable(f"delivery service unavailable: {exc}") from None


class KafkaOrderPublisher:
    """`OrderPublisher`: each order keyed by its id, so one order stays on one partition."""

    def __init__(self, producer: EventProducer) -> None:
        self._producer = producer

    async def publish(self, topic: str, order: ValidatedOrder) -> None:
        await self._producer.publish(topic, order, key=str(order.order_id))


class RedisLoginAttempts:
    """`LoginAttempts`: a counter per email and client address that lives one minute."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def hit(self, email: str, client: str) -> int:
        key = _attempts_key(email, client)
        attempts = int(await self._redis.incr(key))
        if attempts == 1:
            await self._redis.expire(key, LOGIN_WINDOW_SECONDS)
        return attempts

    async def clear(self, email: str, client: str) -> None:
        await self._redis.delete(_attempts_key(email, client))


def _attempts_key(email: str, client: str) -> str:
    return f"login_attempts:{email}:{client}"
