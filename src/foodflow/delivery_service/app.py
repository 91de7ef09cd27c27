"""HTTP edge and composition root of the delivery service: request -> use case -> response,
the consumer of confirmed orders and their kitchen's steps, the periodic dispatch rounds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis
from confluent_kafka import Message
from fastapi import APIRouter, Depends, FastAPI, status
from fastapi import Path as PathParam
from pydantic import ValidationError

from foodflow.clients.inventory import InventoryClient
from foodflow.clients.payment import PaymentClient
from foodflow.contracts import topics
from foodflow.contracts.delivery import (
    CancelDelivery,
    CourierAssignment,
    CourierStep,
    CourierView,
    DeliveryView,
)
from foodflow.contracts.orders import FailureReason, OrderStatusUpdate
from foodflow.delivery_service import services
from foodflow.delivery_service.domain import (
    DeliveryConflict,
    DeliveryError,
    DeliveryNotFound,
    WrongCourier,
)
from foodflow.delivery_service.order_status import OrderStatusMover
from foodflow.delivery_service.repository import DeliveryRepository
from foodflow.orders.announcer import KafkaAnnouncer
from foodflow.orders.records import migrate_orders
from foodflow.orders.status_store import OrderStateStore, StatusCache
from foodflow.platform.config import Settings, get_settings
from foodflow.platform.db.migrations import migrate_pool
from foodflow.platform.db.pool import create_pool
from foodflow.platform.db.redis import create_redis
from foodflow.platform.http.app import service_app
from foodflow.platform.http.errors import install_error_handlers
from foodflow.platform.http.probes import install_probes, postgres_check, running_check
from foodflow.platform.http.runtime import RuntimeSlot
from foodflow.platform.http.service_auth import ServiceTokens, allow, install_service_auth
from foodflow.platform.kafka.consumer import BatchConsumer, BatchHandler
from foodflow.platform.kafka.dlq import DeadLetterPublisher
from foodflow.platform.kafka.producer import EventProducer
from foodflow.platform.periodic import periodic_task
from foodflow.platform.secrets import require

log = logging.getLogger(__name__)
SERVICE = "delivery_service"
# The backstop for an order no kitchen answered waits this long past the restaurant service's
# own timeout, which normally ends such an order first.
KITCHEN_ANSWER_MARGIN_SECONDS = 60.0
CONSUMER_GROUP = "delivery_service"
MIGRATIONS = Path(__file__).parent / "migrations"
CONSUMER_STOP_SECONDS = 30

# Most specific first: the first matching class decides the status code.
ERROR_STATUS: tuple[tuple[type[DeliveryError], int], ...] = (
    (DeliveryNotFound, status.HTTP_404_NOT_FOUND),
    (DeliveryConflict, status.HTTP_409_CONFLICT),
    (WrongCourier, status.HTTP_403_FORBIDDEN),
    (DeliveryError, status.HTTP_400_BAD_REQUEST),
)


@dataclass(frozen=True)
class DeliveryRuntime:
    """What the routes and probes need, built once by the lifespan."""

    pool: asyncpg.Pool
    redis: aioredis.Redis
    ports: services.DeliveryPorts
    consumer: asyncio.Task[None]
    dispatch: asyncio.Task[None]


RUNTIME = RuntimeSlot(DeliveryRuntime)
runtime_of = RUNTIME.of


Runtime = Annotated[DeliveryRuntime, Depends(RUNTIME.dependency)]
CourierId = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
# Every route serves the gateway (its couriers' steps, its customers' cancellations, the
# dashboard's reads).
router = APIRouter(dependencies=[Depends(allow("gateway"))])


@router.get("/deliveries/{order_id}", response_model=DeliveryView)
async def delivery(order_id: UUID, runtime: Runtime) -> DeliveryView:
    """The delivery of an order: state, restaurant, courier, distance and ETA."""
    return await services.get_delivery(runtime.ports, order_id)


@router.post("/deliveries/{order_id}/arrive", response_model=DeliveryView)
async def arrive(order_id: UUID, body: CourierStep, runtime: Runtime) -> DeliveryView:
    """The courier is at the restaurant: `arrived_at` recorded once (a repeat changes nothing);
    409 unless the delivery is assigned; 403 when `courier_id` is given and is not the
    delivery's courier."""
    return await services.arrive(runtime.ports, order_id, body.courier_id)


@router.post("/deliveries/{order_id}/pickup", response_model=DeliveryView)
async def pickup(order_id: UUID, body: CourierStep, runtime: Runtime) -> DeliveryView:
    """The courier has the food: COURIER_ASSIGNED → PICKED_UP; 409 while the kitchen has not
    reported the food ready; 403 when `courier_id` is given and is not the delivery's
    courier."""
    return await services.pick_up(runtime.ports, order_id, body.courier_id)


@router.post("/deliveries/{order_id}/deliver", response_model=DeliveryView)
async def deliver(order_id: UUID, body: CourierStep, runtime: Runtime) -> DeliveryView:
    """The customer has the food: PICKED_UP → DELIVERED; the courier is free again; 403 when
    `courier_id` is given and is not the delivery's courier."""
    return await services.deliver(runtime.ports, order_id, body.courier_id)


@router.post("/deliveries/{order_id}/cancel", response_model=DeliveryView)
async def cancel(order_id: UUID, body: CancelDelivery, runtime: Runtime) -> DeliveryView:
    """Cancel before pickup: refund, stock back, courier freed, CANCELLED; 409 after pickup."""
    return await services.cancel_delivery(runtime.ports, order_id, FailureReason(body.reason))


@router.get("/couriers", response_model=list[CourierView])
async def couriers(runtime: Runtime) -> list[CourierView]:
    """Every courier with position and availability."""
    return await services.list_couriers(runtime.ports)


@router.get("/couriers/{courier_id}", response_model=CourierAssignment)
async def courier(courier_id: CourierId, runtime: Runtime) -> CourierAssignment:
    """A courier, where they are and the delivery they carry now (with pickup and drop-off
    points); 404 for an unknown courier."""
    return await services.courier_assignment(runtime.ports, courier_id)


def followed_orders(ports: services.DeliveryPorts) -> BatchHandler:
    """`handle_batch` over `order_status_updates`: orders with an address, confirmed or at a
    kitchen step (accepted, rejected, preparing, ready), are taken in and follow their
    kitchen. Other events, and events that do not parse, are not this service's business."""

    async def handle(messages: list[Message]) -> None:
        followed = []
        for msg in messages:
            try:
                update = OrderStatusUpdate.model_validate_json(msg.value() or b"")
            except ValidationError:
                continue
            if update.status in services.FOLLOWED and update.delivery_address is not None:
                followed.append(update.order_id)
        if followed:
            await services.follow_orders(ports, followed)

    return handle


async def _stop_consumer(consumer: BatchConsumer, running: asyncio.Task[None]) -> None:
    await consumer.stop()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(running, timeout=CONSUMER_STOP_SECONDS)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the delivery service; its lifespan owns the pool, Redis, Kafka and the clients."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        require(settings, "service_private_key", "service_public_keys")
        tokens = ServiceTokens.from_settings(SERVICE, settings)
        async with contextlib.AsyncExitStack() as stack:
            pool = await create_pool(settings)
            stack.push_async_callback(pool.close)
            await migrate_pool(pool, SERVICE, MIGRATIONS)
            await migrate_orders(pool)  # the order state it moves on lives there
            redis_client = create_redis(settings)
            stack.push_async_callback(redis_client.aclose)
            producer = EventProducer(settings)
            await producer.start()
            stack.push_async_callback(producer.stop)
            payment, inventory = PaymentClient(settings, tokens), InventoryClient(settings, tokens)
            stack.push_async_callback(payment.aclose)
            stack.push_async_callback(inventory.aclose)
            cache = StatusCache(redis_client, settings.order_status_ttl_seconds)
            store = OrderStateStore(pool, cache)
            ports = services.DeliveryPorts(
                deliveries=DeliveryRepository(pool),
                statuses=OrderStatusMover(store, KafkaAnnouncer(producer)),
                payment=payment,
                stock=inventory,
                courier_wait_limit_seconds=settings.courier_wait_limit_seconds,
                courier_speed_kmh=settings.courier_speed_kmh,
                dispatch_tolerance_seconds=settings.dispatch_tolerance_seconds,
                kitchen_answer_limit_seconds=settings.restaurant_accept_timeout_seconds
                + KITCHEN_ANSWER_MARGIN_SECONDS,
            )
            consumer = BatchConsumer(
                settings,
                [topics.ORDER_STATUS_UPDATES],
                CONSUMER_GROUP,
                followed_orders(ports),
                config={"auto.offset.reset": "latest"},
                dead_letter=DeadLetterPublisher(producer),
            )
            await consumer.start()
            consuming = asyncio.create_task(consumer.run(), name="status consumer")
            stack.push_async_callback(_stop_consumer, consumer, consuming)
            dispatching = await stack.enter_async_context(
                periodic_task(
                    lambda: services.dispatch_round(ports),
                    settings.dispatch_interval_seconds,
                    what="Dispatch round",
                    initial_delay=0,
                )
            )
            app.state.runtime = DeliveryRuntime(pool, redis_client, ports, consuming, dispatching)
            log.info("%s consuming %s as %s", SERVICE, topics.ORDER_STATUS_UPDATES, CONSUMER_GROUP)
            yield

    app = service_app("foodflow delivery service", settings, lifespan=lifespan)
    install_probes(
        app,
        SERVICE,
        checks={
            "postgres": postgres_check(lambda request: runtime_of(request).pool),
            "consumer": running_check(lambda request: not runtime_of(request).consumer.done()),
            "dispatch": running_check(lambda request: not runtime_of(request).dispatch.done()),
        },
    )
    install_service_auth(app, SERVICE, settings)
    app.include_router(router)
    install_error_handlers(app, ERROR_STATUS)
    return app
