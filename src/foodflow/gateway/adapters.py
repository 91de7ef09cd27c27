"""The gateway's ports over the outside world: order state (Redis, PostgreSQL), the delivery
and restaurant services (HTTP), Kafka and the throttles of login and sign-up (Redis)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections.abc import Awaitable
from typing import TypeVar
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis
from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, TypeAdapter

from foodflow.clients.restaurant import RestaurantClient
from foodflow.contracts.delivery import (
    CancelDelivery,
    CourierAssignment,
    CourierStep,
    CourierView,
    DeliveryView,
)
from foodflow.contracts.orders import OrderSnapshot, OrderStatusUpdate, ValidatedOrder
from foodflow.contracts.restaurant import (
    MenuEntry,
    OpeningChange,
    OrderCheckResult,
    RejectReason,
    RestaurantView,
    TicketState,
    TicketView,
)
from foodflow.gateway.services import (
    DeliveryRefused,
    DeliveryUnavailable,
    RestaurantRefused,
    RestaurantUnavailable,
)
from foodflow.orders import records, status_store
from foodflow.orders.records import OrderRecord
from foodflow.platform.config import Settings
from foodflow.platform.errors import FoodflowError
from foodflow.platform.http.client import RequestRefused, ServiceClient
from foodflow.platform.http.service_auth import ServiceTokens
from foodflow.platform.kafka.producer import EventProducer

log = logging.getLogger(__name__)
T = TypeVar("T")

# A courier step or a cancellation waits for the delivery service's own work (a refund).
DELIVERY_TIMEOUT_SECONDS = 10.0
# The dashboard's courier panel would rather say "not reachable" than keep the page waiting.
COURIERS_TIMEOUT_SECONDS = 2.0
# What a client learns when the delivery service fails: not its address nor the error.
DELIVERY_UNAVAILABLE = "the delivery service is unavailable; try again in a moment"
# A staff step moves the order too (one transaction there); the public menu and the check
# before an order is placed would rather answer "unavailable" than keep a customer waiting.
RESTAURANT_STEP_TIMEOUT_SECONDS = 10.0
RESTAURANT_READ_TIMEOUT_SECONDS = 3.0
RESTAURANT_UNAVAILABLE = "the restaurant service is unavailable; try again in a moment"
THROTTLE_KEY_PREFIX = "throttle"

_COURIERS = TypeAdapter(list[CourierView])
_ASSIGNMENT = TypeAdapter(CourierAssignment)


class OrderState:
    """`OrderViews`: the current state through `orders.status_store` (Redis' copy, else the
    truth in PostgreSQL), the stored order through `orders.records`."""

    def __init__(self, redis: aioredis.Redis, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        cache = status_store.StatusCache(redis, settings.order_status_ttl_seconds)
        self._reader = status_store.StatusReader(pool, cache)

    async def snapshot(self, order_id: UUID) -> OrderSnapshot | None:
        return await self._reader.snapshot(order_id)

    async def status(self, order_id: UUID) -> OrderStatusUpdate | None:
        return await self._reader.status(order_id)

    async def is_live(self, order_id: UUID) -> bool:
        return await self._reader.snapshot(order_id) is not None

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

    async def arrive(self, order_id: UUID, courier_id: str | None) -> None:
        await self._step(f"/deliveries/{order_id}/arrive", CourierStep(courier_id=courier_id))

    async def pick_up(self, order_id: UUID, courier_id: str | None) -> None:
        await self._step(f"/deliveries/{order_id}/pickup", CourierStep(courier_id=courier_id))

    async def deliver(self, order_id: UUID, courier_id: str | None) -> None:
        await self._step(f"/deliveries/{order_id}/deliver", CourierStep(courier_id=courier_id))

    async def couriers(self) -> list[CourierView]:
        try:
            async with asyncio.timeout(COURIERS_TIMEOUT_SECONDS):
                return await self.get("/couriers", _COURIERS, attempts=1)
        except (FoodflowError, ValueError, TimeoutError) as exc:
            log.warning("The delivery service's couriers are unavailable: %r", exc)
            raise DeliveryUnavailable(DELIVERY_UNAVAILABLE) from exc

    async def assignment(self, courier_id: str) -> CourierAssignment:
        try:
            async with asyncio.timeout(COURIERS_TIMEOUT_SECONDS):
                return await self.get(f"/couriers/{courier_id}", _ASSIGNMENT, attempts=1)
        except RequestRefused as exc:
            raise _refusal(exc, f"/couriers/{courier_id}") from None
        except (FoodflowError, ValueError, TimeoutError) as exc:
            log.warning("Courier %s's delivery is unavailable: %r", courier_id, exc)
            raise DeliveryUnavailable(DELIVERY_UNAVAILABLE) from exc

    async def _step(self, path: str, body: BaseModel) -> None:
        try:
            await self.post(path, body, DeliveryView, attempts=1)
        except RequestRefused as exc:
            raise _refusal(exc, path) from None
        except FoodflowError as exc:
            log.warning("Delivery step %s failed: %s", path, exc)
            raise DeliveryUnavailable(DELIVERY_UNAVAILABLE) from None


# The delivery service's refusals that are the caller's to hear: not their courier (403), no
# such delivery (404), a step out of turn (409), a malformed step (422). Anything else (a 401
# or 400 about the gateway's own service token, say) is ours to mend, not theirs to read.
_PASSED_ON = frozenset({403, 404, 409, 422})


def _refusal(exc: RequestRefused, path: str) -> Exception:
    if exc.status in _PASSED_ON:
        return DeliveryRefused(exc.status, exc.message)
    log.error("The delivery service refused the gateway's %s: %s", path, exc)
    return DeliveryUnavailable(DELIVERY_UNAVAILABLE)


class RestaurantDesk:
    """`Kitchens` over the restaurant service's client. Its refusals that are the caller's to
    hear (no such ticket of this restaurant: 404, a step out of turn: 409, 422) are relayed;
    anything else (no answer, a 5xx, a refusal of the gateway's own service token) is
    `RestaurantUnavailable`, its cause logged."""

    def __init__(self, client: RestaurantClient) -> None:
        self._client = client

    async def restaurants(self) -> list[RestaurantView]:
        return await self._read("restaurants", self._client.restaurants())

    async def restaurant(self, restaurant_id: str) -> RestaurantView:
        return await self._read(
            f"restaurant {restaurant_id}", self._client.restaurant(restaurant_id)
        )

    async def check_order(self, item_ids: list[str]) -> OrderCheckResult:
        return await self._read("check_order", self._client.check_order(item_ids))

    async def tickets(self, restaurant_id: str, state: TicketState | None) -> list[TicketView]:
        return await self._read(
            f"tickets of {restaurant_id}", self._client.tickets(restaurant_id, state)
        )

    async def ticket(self, restaurant_id: str, order_id: UUID) -> TicketView:
        return await self._read(f"ticket {order_id}", self._client.ticket(restaurant_id, order_id))

    async def accept(self, restaurant_id: str, order_id: UUID, minutes: float) -> TicketView:
        return await self._step("accept", self._client.accept(restaurant_id, order_id, minutes))

    async def prepare(self, restaurant_id: str, order_id: UUID) -> TicketView:
        return await self._step("prepare", self._client.prepare(restaurant_id, order_id))

    async def delay(self, restaurant_id: str, order_id: UUID, minutes: float) -> TicketView:
        return await self._step("delay", self._client.delay(restaurant_id, order_id, minutes))

    async def ready(self, restaurant_id: str, order_id: UUID) -> TicketView:
        return await self._step("ready", self._client.ready(restaurant_id, order_id))

    async def reject(
        self, restaurant_id: str, order_id: UUID, reason: RejectReason, detail: str | None
    ) -> TicketView:
        return await self._step(
            "reject", self._client.reject(restaurant_id, order_id, reason, detail)
        )

    async def set_availability(
        self, restaurant_id: str, item_id: str, available: bool
    ) -> MenuEntry:
        return await self._step(
            "availability", self._client.set_availability(restaurant_id, item_id, available)
        )

    async def set_opening(self, restaurant_id: str, change: OpeningChange) -> RestaurantView:
        return await self._step("opening", self._client.set_opening(restaurant_id, change))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _read(self, what: str, call: Awaitable[T]) -> T:
        return await _restaurant_answer(what, call, RESTAURANT_READ_TIMEOUT_SECONDS)

    async def _step(self, what: str, call: Awaitable[T]) -> T:
        return await _restaurant_answer(what, call, RESTAURANT_STEP_TIMEOUT_SECONDS)


async def _restaurant_answer(what: str, call: Awaitable[T], timeout: float) -> T:
    try:
        async with asyncio.timeout(timeout):
            return await call
    except RequestRefused as exc:
        if exc.status in _RESTAURANT_PASSED_ON:
            raise RestaurantRefused(exc.status, exc.message) from None
        log.error("The restaurant service refused the gateway's %s: %s", what, exc)
        raise RestaurantUnavailable(RESTAURANT_UNAVAILABLE) from None
    except (FoodflowError, ValueError, TimeoutError) as exc:
        log.warning("The restaurant service's %s is unavailable: %r", what, exc)
        raise RestaurantUnavailable(RESTAURANT_UNAVAILABLE) from exc


# Not 403: the gateway names the staff's own restaurant, so a 403 there is about the gateway's
# service token.
_RESTAURANT_PASSED_ON = frozenset({404, 409, 422})


class KafkaOrderPublisher:
    """`OrderPublisher`: each order keyed by its id, so one order stays on one partition."""

    def __init__(self, producer: EventProducer) -> None:
        self._producer = producer

    async def publish(self, topic: str, order: ValidatedOrder) -> None:
        await self._producer.publish(topic, order, key=str(order.order_id))


class RedisThrottle:
    """`Throttle` with the `limits` library on Redis (moving windows of one minute, shared by
    every gateway process): login per account and per client address, sign-up per address."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        storage = RedisStorage(
            settings.redis_url.replace("redis://", "async+redis://", 1),
            implementation="redispy",
            # The gateway's own pool; limits types its options narrower than it reads them.
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]
            key_prefix=THROTTLE_KEY_PREFIX,
        )
        self._limiter = MovingWindowRateLimiter(storage)
        self._login_account = RateLimitItemPerMinute(settings.login_attempts_per_minute)
        self._login_address = RateLimitItemPerMinute(settings.login_attempts_per_address_per_minute)
        self._sign_up_address = RateLimitItemPerMinute(settings.signups_per_address_per_minute)

    async def login(self, email: str, address: str) -> int | None:
        return await self._hit(
            (self._login_address, "login-address", _address_key(address)),
            (self._login_account, "login-account", email),
        )

    async def login_succeeded(self, email: str) -> None:
        await self._limiter.clear(self._login_account, "login-account", email)

    async def sign_up(self, address: str) -> int | None:
        return await self._hit((self._sign_up_address, "sign-up-address", _address_key(address)))

    async def _hit(self, *rules: tuple[RateLimitItem, str, str]) -> int | None:
        """Count one attempt under each rule until one refuses: then the seconds to wait."""
        for item, *identifiers in rules:
            if not await self._limiter.hit(item, *identifiers):
                stats = await self._limiter.get_window_stats(item, *identifiers)
                return max(1, math.ceil(stats.reset_time - time.time()))
        return None


def _address_key(address: str) -> str:
    """An IPv4 address, or the /64 of an IPv6 one: one host commonly holds a whole /64."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    # An IPv4 client on a dual-stack socket (::ffff:a.b.c.d) is that IPv4 address, not a /64
    # shared with every other IPv4 client.
    ip = (parsed.ipv4_mapped if isinstance(parsed, ipaddress.IPv6Address) else None) or parsed
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
