"""Composition root of the order writer: a FastAPI app whose lifespan owns the pool, the
dead-letter producer and the consumer of `db_write_order_status`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from fastapi import FastAPI

from foodflow.contracts import topics
from foodflow.order_writer.handler import PersistFinalOrders
from foodflow.order_writer.metrics import WriterMetrics
from foodflow.order_writer.store import PostgresOrderStore
from foodflow.orders.records import migrate_orders
from foodflow.platform.config import Settings
from foodflow.platform.db.pool import DATABASE_UNAVAILABLE_ERRORS, create_pool
from foodflow.platform.http.app import service_app
from foodflow.platform.http.probes import install_probes, postgres_check, running_check
from foodflow.platform.http.runtime import RuntimeSlot
from foodflow.platform.kafka.consumer import BatchConsumer
from foodflow.platform.kafka.dlq import DeadLetterPublisher
from foodflow.platform.kafka.producer import EventProducer
from foodflow.platform.metrics import record_consumer_lag
from foodflow.platform.retry import retry_async

log = logging.getLogger(__name__)

GROUP_ID = "order_writer"


@dataclass
class WriterRuntime:
    """What the lifespan builds, kept on `app.state.runtime`."""

    pool: asyncpg.Pool
    store: PostgresOrderStore
    producer: EventProducer
    consumer: BatchConsumer
    metrics: WriterMetrics
    task: asyncio.Task[None]


RUNTIME = RuntimeSlot(WriterRuntime)
runtime_of = RUNTIME.of


def create_app(
    settings: Settings,
    *,
    topic: str = topics.DB_WRITE_ORDER_STATUS,
    group_id: str = GROUP_ID,
    dead_letter_topic: str = topics.DEAD_LETTER,
    batch_size: int | None = None,
) -> FastAPI:
    """The order writer app; its lifespan consumes `topic` into PostgreSQL until shutdown."""
    metrics = WriterMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # min_size=0: the writer starts, and says it is not ready, while PostgreSQL is down.
        pool = await create_pool(settings, min_size=0, max_size=4)
        store = PostgresOrderStore(pool)
        producer = EventProducer(settings, client_id=f"{group_id}-dlq")
        await producer.start()
        dead_letters = DeadLetterPublisher(producer, dead_letter_topic)
        handler = PersistFinalOrders(store, dead_letters, metrics)
        consumer = BatchConsumer(
            settings,
            [topic],
            group_id,
            handler,
            batch_size=batch_size,
            poll_timeout=0.5,
            dead_letter=dead_letters,
        )
        consuming = False

        async def migrate_then_consume() -> None:
            # The tables are brought up to date before the first write; while PostgreSQL is
            # down this waits here, and the writer answers /ready with 503.
            await retry_async(
                lambda: migrate_orders(pool),
                retry_on=DATABASE_UNAVAILABLE_ERRORS,
                attempts=None,
                max_delay=5.0,
                what="migrating the order tables",
            )
            nonlocal consuming
            consuming = True
            await consumer.run()

        task = asyncio.create_task(migrate_then_consume(), name="order-writer-consumer")
        task.add_done_callback(_log_crash)
        app.state.runtime = WriterRuntime(pool, store, producer, consumer, metrics, task)
        try:
            yield
        finally:
            # Order matters: stop retrying PostgreSQL so the batch in hand ends (uncommitted if
            # unwritten), let the consumer commit and leave, then drain dead letters.
            store.abort_retries()
            if not consuming:
                task.cancel()
            await consumer.stop()
            await asyncio.gather(task, return_exceptions=True)
            await producer.stop()
            try:
                await asyncio.wait_for(pool.close(), timeout=5.0)
            except TimeoutError:
                pool.terminate()

    app = service_app("foodflow order writer", settings, lifespan=lifespan)

    async def collect(app: FastAPI) -> None:
        """Rows written, batches, dead letters and write latency are counted as they happen."""
        runtime: WriterRuntime = app.state.runtime
        lag = await runtime.consumer.lag()
        metrics.consumer_lag.set(sum(lag.values()))
        await record_consumer_lag("order_writer", runtime.consumer)

    install_probes(
        app,
        "order_writer",
        checks={
            "postgres": postgres_check(lambda request: runtime_of(request).pool),
            "consumer": running_check(lambda request: runtime_of(request).consumer.running),
        },
        collect=collect,
        registries=[metrics.registry],
    )
    return app


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("The order writer's consumer loop stopped", exc_info=task.exception())
