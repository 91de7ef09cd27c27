"""The order writer's process: a FastAPI app whose lifespan owns the pool, producer and consumer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from foodflow.contracts import topics
from foodflow.order_writer.handler import PersistFinalOrders
from foodflow.order_writer.metrics import WriterMetrics
from foodflow.order_writer.writer import PostgresOrderStore
from foodflow.platform.config import Settings
from foodflow.platform.db.pool import create_pool
from foodflow.platform.kafka.consumer import BatchConsumer
from foodflow.platform.kafka.producer import EventProducer
from foodflow.platform.metrics import install_metrics, record_consumer_lag

log = logging.getLogger(__name__)

GROUP_ID = "order_writer"


@dataclass
class WriterRuntime:
    pool: asyncpg.Pool
    store: PostgresOrderStore
    producer: EventProducer
    consumer: BatchConsumer
    task: asyncio.Task[None]


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
        handler = PersistFinalOrders(store, producer, metrics, dead_letter_topic=dead_letter_topic)
        consumer = BatchConsumer(
            settings, [topic], group_id, handler, batch_size=batch_size, poll_timeout=0.5
        )
        task = asyncio.create_task(consumer.run(), name="order-writer-consumer")
        task.add_done_callback(_log_crash)
        app.state.writer = WriterRuntime(pool, store, producer, consumer, task)
        try:
            yield
        finally:
            # Order matters: stop retrying PostgreSQL so the batch in hand ends (uncommitted if
            # unwritten), let the consumer commit and leave, then drain dead letters.
            store.abort_retries()
            await consumer.stop()
            with contextlib.suppress(Exception):
                await task
            await producer.stop()
            try:
                await asyncio.wait_for(pool.close(), timeout=5.0)
            except TimeoutError:
                pool.terminate()

    app = FastAPI(title="foodflow order writer", lifespan=lifespan)
    app.state.metrics = metrics

    @app.get("/health")
    async def health(request: Request) -> dict[str, object]:
        """Liveness, with when the last batch was written."""
        runtime: WriterRuntime = request.app.state.writer
        last = runtime.consumer.last_batch_at
        return {
            "status": "ok",
            "consumer_running": runtime.consumer.running,
            "batches": runtime.consumer.batches_handled,
            "messages": runtime.consumer.messages_handled,
            "last_batch_at": last,
            "seconds_since_last_batch": None if last is None else round(time.time() - last, 3),
        }

    @app.get("/ready")
    async def ready(request: Request) -> JSONResponse:
        """200 when PostgreSQL answers and the consumer loop runs, else 503."""
        runtime: WriterRuntime = request.app.state.writer
        postgres = await runtime.store.ping()
        consumer = runtime.consumer.running
        ok = postgres and consumer
        return JSONResponse(
            {"ready": ok, "postgres": postgres, "consumer": consumer},
            status_code=200 if ok else 503,
        )

    async def collect(app: FastAPI) -> None:
        """Rows written, batches, dead letters and write latency are counted as they happen."""
        runtime: WriterRuntime = app.state.writer
        lag = await runtime.consumer.lag()
        metrics.consumer_lag.set(sum(lag.values()))
        await record_consumer_lag("order_writer", runtime.consumer)

    install_metrics(app, "order_writer", collect=collect, registries=[metrics.registry])

    return app


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("The order writer's consumer loop stopped", exc_info=task.exception())
