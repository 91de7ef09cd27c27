"""Composition root of the order manager: builds the real adapters, runs the consumer loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from foodflow.clients.inventory import InventoryClient
from foodflow.clients.payment import PaymentClient
from foodflow.clients.pricing import PricingClient
from foodflow.contracts import topics
from foodflow.order_manager.intake import OrderIntake
from foodflow.order_manager.saga import OrderSaga
from foodflow.order_manager.sweeper import StuckOrderSweeper
from foodflow.orders.announcer import KafkaAnnouncer
from foodflow.orders.status_store import RedisStatusStore
from foodflow.platform.config import Settings
from foodflow.platform.db.redis import create_redis
from foodflow.platform.kafka.consumer import BatchConsumer
from foodflow.platform.kafka.producer import EventProducer
from foodflow.platform.metrics import install_metrics, record_consumer_lag, watch_event_loop_lag

log = logging.getLogger(__name__)
CONSUMER_GROUP = "order_manager"


def create_app(settings: Settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis_client = create_redis(settings)
        inventory = InventoryClient(settings)
        pricing = PricingClient(settings)
        payment = PaymentClient(settings)
        producer = EventProducer(settings)
        await producer.start()
        store = RedisStatusStore(redis_client, settings.order_status_ttl_seconds)
        announce = KafkaAnnouncer(producer)
        saga = OrderSaga(
            inventory=inventory,
            pricing=pricing,
            store=store,
            announce=announce,
            payment=payment,
            order_timeout=settings.order_timeout_seconds,
        )
        intake = OrderIntake(saga, producer, store, announce, settings.max_in_flight_orders)
        consumer = BatchConsumer(
            settings,
            [topics.VALIDATED_ORDERS],
            CONSUMER_GROUP,
            intake.handle_batch,
            batch_size=settings.consume_batch_size,
            max_batches_in_flight=settings.consume_batches_in_flight,
            max_messages_in_flight=settings.max_in_flight_orders,
        )
        sweeper = StuckOrderSweeper(
            saga,
            store,
            interval=settings.sweep_interval_seconds,
            stuck_after=settings.stuck_order_after_seconds,
        )
        await consumer.start()
        loop_task = asyncio.create_task(consumer.run(), name="validated_orders consumer")
        sweep_task = asyncio.create_task(sweeper.run(), name="stuck order sweeper")
        lag_task = asyncio.create_task(watch_event_loop_lag("order_manager"), name="loop lag")
        app.state.consumer = consumer
        app.state.consumer_task = loop_task
        app.state.redis = redis_client
        log.info("order_manager consuming %s as group %s", topics.VALIDATED_ORDERS, CONSUMER_GROUP)
        try:
            yield
        finally:
            # Graceful shutdown: finish the batch in hand, commit it, then close the clients.
            sweeper.stop()
            lag_task.cancel()
            await consumer.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(asyncio.gather(loop_task, sweep_task), timeout=30)
            await producer.stop()
            await inventory.aclose()
            await pricing.aclose()
            await payment.aclose()
            await redis_client.aclose()

    app = FastAPI(title="foodflow order_manager", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        """Readiness: the consumer loop runs and Redis answers."""
        checks = {"consumer": not app.state.consumer_task.done()}
        try:
            checks["redis"] = bool(await app.state.redis.ping())
        except Exception:
            checks["redis"] = False
        ok = all(checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    async def collect(app: FastAPI) -> None:
        await record_consumer_lag("order_manager", app.state.consumer)

    install_metrics(app, "order_manager", collect=collect)

    return app
