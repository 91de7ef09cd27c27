"""Composition root of the order manager: builds the real adapters, runs the consumer loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis
from fastapi import FastAPI

from foodflow.clients.inventory import InventoryClient
from foodflow.clients.payment import PaymentClient
from foodflow.clients.pricing import PricingClient
from foodflow.contracts import topics
from foodflow.order_manager.intake import OrderIntake
from foodflow.order_manager.saga import SAGA_DEPENDENCIES, OrderSaga
from foodflow.order_manager.sweeper import StuckOrderSweeper
from foodflow.orders.announcer import KafkaAnnouncer
from foodflow.orders.records import migrate_orders
from foodflow.orders.status_store import OrderStateStore, StatusCache
from foodflow.platform.config import Settings
from foodflow.platform.db.pool import create_pool
from foodflow.platform.db.redis import create_redis
from foodflow.platform.gate import DependencyGates
from foodflow.platform.http.app import service_app
from foodflow.platform.http.probes import (
    gate_check,
    install_probes,
    postgres_check,
    running_check,
)
from foodflow.platform.http.runtime import RuntimeSlot
from foodflow.platform.http.service_auth import ServiceTokens
from foodflow.platform.kafka.consumer import BatchConsumer
from foodflow.platform.kafka.dlq import DeadLetterPublisher
from foodflow.platform.kafka.producer import EventProducer
from foodflow.platform.metrics import record_consumer_lag, watch_event_loop_lag
from foodflow.platform.periodic import periodic_task
from foodflow.platform.secrets import require

log = logging.getLogger(__name__)
CONSUMER_GROUP = "order_manager"


@dataclass
class OrderManagerRuntime:
    """What the order manager runs on, built once per process in the lifespan."""

    pool: asyncpg.Pool
    redis: aioredis.Redis
    consumer: BatchConsumer
    consumer_task: asyncio.Task[None]
    inventory: InventoryClient
    pricing: PricingClient
    payment: PaymentClient


RUNTIME = RuntimeSlot(OrderManagerRuntime)


def create_app(settings: Settings) -> FastAPI:
    # Built with the app, not in the lifespan: `/ready` reports them.
    gates = DependencyGates.named(SAGA_DEPENDENCIES, settings.dependency_grace_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        require(settings, "service_private_key")
        tokens = ServiceTokens.from_settings("order_manager", settings)
        pool = await create_pool(settings, min_size=1, max_size=8)
        await migrate_orders(pool)  # the order state the saga resumes from lives there
        redis_client = create_redis(settings)
        inventory = InventoryClient(settings, tokens)
        pricing = PricingClient(settings, tokens)
        payment = PaymentClient(settings, tokens)
        producer = EventProducer(settings)
        await producer.start()
        store = OrderStateStore(pool, StatusCache(redis_client, settings.order_status_ttl_seconds))
        announce = KafkaAnnouncer(producer)
        saga = OrderSaga(
            inventory=inventory,
            pricing=pricing,
            store=store,
            announce=announce,
            payment=payment,
            gates=gates,
            order_timeout=settings.order_timeout_seconds,
        )
        dead_letters = DeadLetterPublisher(producer)
        intake = OrderIntake(saga, dead_letters, store, announce, settings.max_in_flight_orders)
        consumer = BatchConsumer(
            settings,
            [topics.VALIDATED_ORDERS],
            CONSUMER_GROUP,
            intake.handle_batch,
            batch_size=settings.consume_batch_size,
            max_batches_in_flight=settings.consume_batches_in_flight,
            max_messages_in_flight=settings.max_in_flight_orders,
            dead_letter=dead_letters,
        )
        sweeper = StuckOrderSweeper(
            saga,
            store,
            stuck_after=settings.stuck_order_after_seconds,
            retention_seconds=settings.order_state_retention_days * 86400,
        )
        await consumer.start()
        # No new order is read while a dependency's gate is open within the grace.
        loop_task = asyncio.create_task(
            consumer.run(gate=gates.wait_passable), name="validated_orders consumer"
        )
        lag_task = asyncio.create_task(watch_event_loop_lag("order_manager"), name="loop lag")
        app.state.runtime = OrderManagerRuntime(
            pool, redis_client, consumer, loop_task, inventory, pricing, payment
        )
        log.info("order_manager consuming %s as group %s", topics.VALIDATED_ORDERS, CONSUMER_GROUP)
        try:
            async with periodic_task(
                sweeper.sweep_once,
                settings.sweep_interval_seconds,
                what="Sweeping stuck orders",
                initial_delay=0,
            ):
                try:
                    yield
                finally:
                    # Graceful shutdown: finish the batch in hand and commit it first.
                    lag_task.cancel()
                    await consumer.stop()
                    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                        await asyncio.wait_for(loop_task, timeout=30)
        finally:
            await producer.stop()
            await inventory.aclose()
            await pricing.aclose()
            await payment.aclose()
            await redis_client.aclose()
            await pool.close()

    app = service_app("foodflow order_manager", settings, lifespan=lifespan)

    async def collect(app: FastAPI) -> None:
        await record_consumer_lag("order_manager", app.state.runtime.consumer)

    install_probes(
        app,
        "order_manager",
        {
            "consumer": running_check(lambda r: not RUNTIME.of(r).consumer_task.done()),
            "postgres": postgres_check(lambda r: RUNTIME.of(r).pool),
            # Each gate is ready while closed; a called service must also answer /health now.
            "inventory": gate_check(gates["inventory"], lambda r: RUNTIME.of(r).inventory),
            "pricing": gate_check(gates["pricing"], lambda r: RUNTIME.of(r).pricing),
            "payment": gate_check(gates["payment"], lambda r: RUNTIME.of(r).payment),
            "postgres_gate": gate_check(gates["postgres"]),
        },
        collect=collect,
    )
    return app
