"""Composition root of the delivery service: HTTP endpoints, the status consumer, the
periodic dispatch round."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated
from uuid import UUID

from confluent_kafka import Message
from fastapi import APIRouter, Depends, FastAPI, Request, Response, status
from pydantic import ValidationError

from foodflow.clients.payment import PaymentClient
from foodflow.contracts import topics
from foodflow.contracts.delivery import CancelDelivery, CourierStep, CourierView, DeliveryView
from foodflow.contracts.orders import FailureReason, OrderStatus, OrderStatusUpdate
from foodflow.delivery_service.dispatch import Dispatcher, OrderMover, StockClient
from foodflow.delivery_service.domain import DeliveryConflict, DeliveryError, DeliveryNotFound
from foodflow.orders.announcer import KafkaAnnouncer
from foodflow.orders.status_store import RedisStatusStore
from foodflow.platform.config import Settings, get_settings
from foodflow.platform.db.pool import create_pool, database_ready
from foodflow.platform.db.redis import create_redis
from foodflow.platform.http.errors import install_error_handlers
from foodflow.platform.kafka.consumer import BatchConsumer
from foodflow.platform.kafka.producer import EventProducer
from foodflow.platform.metrics import install_metrics

log = logging.getLogger(__name__)
CONSUMER_GROUP = "delivery_service"

ERROR_STATUS: tuple[tuple[type[DeliveryError], int], ...] = (
    (DeliveryNotFound, status.HTTP_404_NOT_FOUND),
    (DeliveryConflict, status.HTTP_409_CONFLICT),
    (DeliveryError, status.HTTP_400_BAD_REQUEST),
)


async def get_dispatcher(request: Request) -> Dispatcher:
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
router = APIRouter()


@router.get("/deliveries/{order_id}", response_model=DeliveryView)
async def delivery(order_id: UUID, dispatcher: DispatcherDep) -> DeliveryView:
    """The delivery of an order: state, restaurant, courier, distance and ETA."""
    return await dispatcher.view(order_id)


@router.post("/deliveries/{order_id}/pickup", response_model=DeliveryView)
async def pickup(order_id: UUID, body: CourierStep, dispatcher: DispatcherDep) -> DeliveryView:
    """The courier has the food: COURIER_ASSIGNED → PICKED_UP."""
    return await dispatcher.pickup(order_id, body.courier_id)


@router.post("/deliveries/{order_id}/deliver", response_model=DeliveryView)
async def deliver(order_id: UUID, body: CourierStep, dispatcher: DispatcherDep) -> DeliveryView:
    """The customer has the food: PICKED_UP → DELIVERED; the courier is free again."""
    return await dispatcher.deliver(order_id, body.courier_id)


@router.post("/deliveries/{order_id}/cancel", response_model=DeliveryView)
async def cancel(order_id: UUID, body: CancelDelivery, dispatcher: DispatcherDep) -> DeliveryView:
    """Cancel before pickup: refund, stock back, courier freed, CANCELLED; 409 after pickup."""
    return await dispatcher.cancel(order_id, FailureReason(body.reason))


@router.get("/couriers", response_model=list[CourierView])
async def couriers(dispatcher: DispatcherDep) -> list[CourierView]:
    """Every courier with position and availability."""
    return await dispatcher.couriers()


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request, response: Response) -> dict[str, str]:
    """Readiness: PostgreSQL answers and the status consumer runs."""
    ok = await database_ready(request.app.state.pool) and not request.app.state.loop_task.done()
    if not ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return {"status": "ready" if ok else "unavailable"}


class ConfirmedOrders:
    """`handle_batch` over `order_status_updates`: confirmed orders with an address wait for
    a courier. Other events, and events that do not parse, are not this service's business."""

    def __init__(self, dispatcher: Dispatcher, store: RedisStatusStore) -> None:
        self.dispatcher = dispatcher
        self.store = store

    async def __call__(self, messages: list[Message]) -> None:
        taken = False
        for msg in messages:
            try:
                update = OrderStatusUpdate.model_validate_json(msg.value() or b"")
            except ValidationError:
                continue
            if update.status is not OrderStatus.CONFIRMED or update.delivery_address is None:
                continue
            snapshot = await self.store.load_snapshot(update.order_id)
            if snapshot is not None and await self.dispatcher.ingest(snapshot):
                taken = True
        if taken:
            await self.dispatcher.dispatch_once()


async def dispatch_rounds(dispatcher: Dispatcher, interval: float) -> None:
    while True:
        try:
            await dispatcher.dispatch_once()
        except Exception:
            log.exception("Dispatch round failed; next round in %.1fs", interval)
        await asyncio.sleep(interval)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings)
        redis_client = create_redis(settings)
        producer = EventProducer(settings)
        await producer.start()
        store = RedisStatusStore(redis_client, settings.order_status_ttl_seconds)
        payment, stock = PaymentClient(settings), StockClient(settings)
        dispatcher = Dispatcher(
            pool, OrderMover(store, KafkaAnnouncer(producer)), payment, stock, settings
        )
        consumer = BatchConsumer(
            settings,
            [topics.ORDER_STATUS_UPDATES],
            CONSUMER_GROUP,
            ConfirmedOrders(dispatcher, store),
            config={"auto.offset.reset": "latest"},
        )
        await consumer.start()
        app.state.pool = pool
        app.state.dispatcher = dispatcher
        app.state.loop_task = asyncio.create_task(consumer.run(), name="status consumer")
        rounds = asyncio.create_task(
            dispatch_rounds(dispatcher, settings.dispatch_interval_seconds), name="dispatch"
        )
        log.info("delivery_service consuming %s as %s", topics.ORDER_STATUS_UPDATES, CONSUMER_GROUP)
        try:
            yield
        finally:
            rounds.cancel()
            await consumer.stop()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(app.state.loop_task, timeout=30)
            with contextlib.suppress(asyncio.CancelledError):
                await rounds
            await producer.stop()
            await payment.aclose()
            await stock.aclose()
            await redis_client.aclose()
            await pool.close()

    app = FastAPI(title="foodflow delivery service", lifespan=lifespan)
    install_metrics(app, "delivery_service")
    app.include_router(router)
    install_error_handlers(app, ERROR_STATUS)
    return app
