"""Composition root of the gateway: the public HTTP edge (menu, dashboard, and the order API).

The lifespan owns the shared clients (PostgreSQL pool, Redis, Kafka producer) and a consumer
of `order_status_updates` that feeds the dashboard. Each resource is one router module; routes
get what they need through the aliases in `gateway.deps`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from types import FrameType

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from foodflow.contracts import topics
from foodflow.gateway import auth, dashboard, menu, orders
from foodflow.gateway.board import Board
from foodflow.gateway.deps import GatewayRuntime
from foodflow.gateway.feed import Broadcaster, StatusFeed
from foodflow.platform.config import Settings
from foodflow.platform.db.pool import create_pool, database_ready
from foodflow.platform.db.redis import create_redis
from foodflow.platform.kafka.consumer import BatchConsumer
from foodflow.platform.kafka.producer import EventProducer
from foodflow.platform.metrics import install_metrics, record_consumer_lag

log = logging.getLogger(__name__)

STATS_INTERVAL_SECONDS = 2.0


def dashboard_group_id() -> str:
    """A group of its own per gateway process: every gateway sees every status event."""
    return f"gateway-dashboard-{uuid.uuid4().hex[:12]}"


async def _publish_stats_forever(feed: StatusFeed) -> None:
    while True:
        await asyncio.sleep(STATS_INTERVAL_SECONDS)
        feed.publish_stats()


@contextlib.contextmanager
def _close_streams_on_sigterm(closing: asyncio.Event) -> Iterator[None]:
    """End the dashboard's open streams as soon as shutdown begins.

    uvicorn waits for open responses before it runs the lifespan's shutdown; without this an
    open SSE stream would hold every stop for the whole graceful timeout.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(closing.set)
        chained = previous[signal.Signals(signum)]
        if callable(chained):
            chained(signum, frame)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def create_app(settings: Settings) -> FastAPI:
    """Build the gateway app; its lifespan starts the clients and the dashboard's feed."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        closing = app.state.closing = asyncio.Event()
        pool = await create_pool(settings, min_size=1, max_size=5)
        redis_client = create_redis(settings)
        producer = EventProducer(settings, client_id="gateway")
        await producer.start()
        board, broadcaster = Board(), Broadcaster()
        feed = StatusFeed(board, broadcaster)
        consumer = BatchConsumer(
            settings,
            [topics.ORDER_STATUS_UPDATES],
            dashboard_group_id(),
            feed.handle_batch,
            batch_size=500,
            poll_timeout=0.2,
            # Start at the end: the dashboard shows what happens from now on.
            config={"auto.offset.reset": "latest"},
        )
        await consumer.start()
        runtime = GatewayRuntime(
            settings, pool, redis_client, producer, board, broadcaster, consumer
        )
        runtime.tasks = [
            asyncio.create_task(consumer.run(), name="gateway status consumer"),
            asyncio.create_task(_publish_stats_forever(feed), name="gateway stats"),
        ]
        app.state.gateway = runtime
        log.info("Gateway ready; dashboard consuming %s", topics.ORDER_STATUS_UPDATES)
        try:
            with _close_streams_on_sigterm(closing):
                yield
        finally:
            closing.set()
            await consumer.stop()
            for task in runtime.tasks:
                task.cancel()
            await asyncio.gather(*runtime.tasks, return_exceptions=True)
            await producer.stop()
            await redis_client.aclose()
            await pool.close()

    app = FastAPI(
        title="foodflow gateway",
        description="Public HTTP edge of foodflow: menu, live dashboard and the order API.",
        lifespan=lifespan,
    )

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"])
    async def ready(request: Request) -> JSONResponse:
        """Readiness: PostgreSQL and Redis answer and the dashboard consumer has its partitions."""
        runtime: GatewayRuntime = request.app.state.gateway
        checks = {
            "postgres": await database_ready(runtime.pool),
            "consumer": runtime.consumer.running and bool(await runtime.consumer.assignment()),
        }
        try:
            checks["redis"] = bool(await runtime.redis.ping())
        except Exception:
            checks["redis"] = False
        ok = all(checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    async def collect(app: FastAPI) -> None:
        await record_consumer_lag("gateway", app.state.gateway.consumer)

    install_metrics(app, "gateway", collect=collect)
    app.mount("/static", StaticFiles(packages=[("foodflow.gateway", "static")]), name="static")

    # One router per resource. The order API (orders, users, auth) is included here too.
    app.include_router(menu.router)
    app.include_router(dashboard.router)
    app.include_router(auth.router)
    app.include_router(orders.router)
    return app
