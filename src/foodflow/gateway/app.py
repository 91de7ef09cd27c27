"""Composition root of the gateway: the public HTTP edge (menu, dashboard, and the order API).

The lifespan applies the gateway's and the order tables' migrations, then builds one
`GatewayRuntime` (PostgreSQL pool, Redis, Kafka producer, the inventory, delivery and restaurant
clients, the adapters over them) and a consumer of `order_status_updates` that feeds the dashboard.
Each resource is one router module; routes get what they need through `gateway.deps`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from types import FrameType

import asyncpg
from fastapi import FastAPI, Request, Response, status
from fastapi.staticfiles import StaticFiles

from foodflow.clients.inventory import InventoryClient
from foodflow.clients.restaurant import RestaurantClient
from foodflow.contracts import topics
from foodflow.gateway import auth, couriers, dashboard, menu, orders, restaurants
from foodflow.gateway.adapters import (
    RESTAURANT_STEP_TIMEOUT_SECONDS,
    DeliveryClient,
    KafkaOrderPublisher,
    OrderState,
    RedisThrottle,
    RestaurantDesk,
)
from foodflow.gateway.board import SERIES_SPAN, Board
from foodflow.gateway.deps import GatewayRuntime, runtime_of
from foodflow.gateway.feed import Broadcaster, Contacts, StatusFeed
from foodflow.gateway.ops import OpsRefresher
from foodflow.gateway.repository import GatewayRepository, migrate_gateway
from foodflow.gateway.security import Passwords
from foodflow.gateway.services import (
    Conflict,
    DeliveryUnavailable,
    Forbidden,
    GatewayError,
    Invalid,
    NotFound,
    Relayed,
    RestaurantUnavailable,
    TooManyAttempts,
    WrongCredentials,
    ensure_demo_accounts,
)
from foodflow.orders.activity import recent_snapshots
from foodflow.orders.records import migrate_orders
from foodflow.platform.config import Settings
from foodflow.platform.db.pool import create_pool
from foodflow.platform.db.redis import create_redis
from foodflow.platform.errors import ServiceUnavailable
from foodflow.platform.http.app import service_app
from foodflow.platform.http.errors import (
    ErrorTable,
    domain_problem,
    field_errors,
    problem,
    status_of,
    summary,
    unavailable,
)
from foodflow.platform.http.probes import install_probes, postgres_check, redis_check
from foodflow.platform.http.service_auth import ServiceTokens
from foodflow.platform.kafka.consumer import BatchConsumer
from foodflow.platform.kafka.dlq import DeadLetterPublisher
from foodflow.platform.kafka.producer import EventProducer
from foodflow.platform.metrics import record_consumer_lag
from foodflow.platform.periodic import run_periodically
from foodflow.platform.secrets import require

log = logging.getLogger(__name__)

STATS_INTERVAL_SECONDS = 2.0

# Most specific first. A refusal relayed from the delivery or restaurant service (a courier's or
# a kitchen's step) keeps that service's own status code.
ERROR_STATUS: ErrorTable = (
    (NotFound, status.HTTP_404_NOT_FOUND),
    (Conflict, status.HTTP_409_CONFLICT),
    (Invalid, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (Forbidden, status.HTTP_403_FORBIDDEN),
    (WrongCredentials, status.HTTP_401_UNAUTHORIZED),
    (TooManyAttempts, status.HTTP_429_TOO_MANY_REQUESTS),
    (DeliveryUnavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
    (RestaurantUnavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
    (ServiceUnavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
)


def install_gateway_errors(app: FastAPI) -> None:
    """Answer the use cases' errors with problem details, as every service does: the refusal's
    own detail (a request's refused fields in `errors`); for a service behind the gateway that
    did not answer, which one and where is logged, not told to the client."""

    async def answer(request: Request, exc: Exception) -> Response:
        if isinstance(exc, Relayed):
            code = exc.status
        else:
            code = status_of(exc, ERROR_STATUS) or status.HTTP_500_INTERNAL_SERVER_ERROR
        if not isinstance(exc, GatewayError):
            return unavailable(request, exc, code)
        if isinstance(exc.detail, str):
            return domain_problem(request, exc, code, headers=exc.headers or None)
        errors = field_errors(exc.detail if isinstance(exc.detail, list) else [])
        return problem(
            request,
            code,
            summary(errors),
            title="Request not valid",
            errors=errors,
            headers=exc.headers or None,
        )

    for error_type in (GatewayError, ServiceUnavailable):
        app.add_exception_handler(error_type, answer)


def dashboard_group_id() -> str:
    """A group of its own per gateway process: every gateway sees every status event."""
    return f"gateway-dashboard-{uuid.uuid4().hex[:12]}"


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


async def restore_board(
    pool: asyncpg.Pool, board: Board, contacts: Contacts, settings: Settings
) -> None:
    """Refill the dashboard from the orders changed in the last `SERIES_SPAN` (PostgreSQL), so
    that a restarted gateway shows the same figures; runs once, beside the live feed."""
    since = datetime.now(UTC) - SERIES_SPAN
    try:
        snapshots = await recent_snapshots(pool, since, settings.dashboard_restore_limit)
        await contacts.learn({s.user_id for s in snapshots})
        test_users = {s.user_id for s in snapshots if contacts.is_test(s.user_id)}
        restored = board.restore(snapshots, test_users)
    except Exception as exc:  # the live feed goes on; the charts start empty
        log.warning("Could not refill the dashboard from PostgreSQL: %s", exc)
        return
    for snap in snapshots:
        card = board.get(snap.order_id)
        if card is not None and card.customer is None:
            card.customer = contacts.label(snap.user_id)
    log.info("Dashboard refilled with %d orders changed since %s", restored, since)


async def _dashboard_consumer_assigned(request: Request) -> bool:
    """Ready once the dashboard's consumer runs and has its partitions."""
    consumer = runtime_of(request).consumer
    return consumer.running and bool(await consumer.assignment())


def create_app(settings: Settings) -> FastAPI:
    """Build the gateway app; its lifespan starts the clients and the dashboard's feed."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        require(settings, "jwt_signing_keys", "service_private_key", "demo_operator_password")
        tokens = ServiceTokens.from_settings("gateway", settings)
        pool = await create_pool(settings, min_size=1, max_size=5)
        await migrate_gateway(pool)
        await migrate_orders(pool)  # the gateway reads them: they must be there first
        repository = GatewayRepository(pool)
        operator_password = settings.demo_operator_password
        passwords = Passwords(settings.password_hash_concurrency)
        demo_customer = await ensure_demo_accounts(
            repository,
            passwords,
            operator_password.get_secret_value() if operator_password else None,
        )
        redis_client = create_redis(settings)
        producer = EventProducer(settings, client_id="gateway")
        await producer.start()
        board, broadcaster = Board(), Broadcaster()
        contacts = Contacts(repository.contacts)
        feed = StatusFeed(board, broadcaster, contacts)
        ops = OpsRefresher(settings, pool, board, broadcaster.publish)
        consumer = BatchConsumer(
            settings,
            [topics.ORDER_STATUS_UPDATES],
            dashboard_group_id(),
            feed.handle_batch,
            batch_size=500,
            poll_timeout=0.2,
            # Start at the end: the dashboard shows what happens from now on.
            config={"auto.offset.reset": "latest"},
            dead_letter=DeadLetterPublisher(producer),
            static_membership=False,  # its own group: a restarted gateway starts a new one
        )
        await consumer.start()

        async def publish_stats() -> None:
            feed.publish_stats()

        runtime = GatewayRuntime(
            settings=settings,
            pool=pool,
            redis=redis_client,
            producer=producer,
            consumer=consumer,
            board=board,
            broadcaster=broadcaster,
            repository=repository,
            orders=OrderState(redis_client, pool, settings),
            inventory=InventoryClient(settings, tokens),
            delivery=DeliveryClient(settings, tokens),
            restaurants=RestaurantDesk(
                RestaurantClient(
                    settings.model_copy(
                        update={"http_timeout_seconds": RESTAURANT_STEP_TIMEOUT_SECONDS}
                    ),
                    tokens,
                )
            ),
            publisher=KafkaOrderPublisher(producer),
            throttle=RedisThrottle(redis_client, settings),
            passwords=passwords,
            demo_customer=demo_customer,
            ops=ops,
        )
        runtime.tasks = [
            asyncio.create_task(restore_board(pool, board, contacts, settings), name="restore"),
            asyncio.create_task(
                run_periodically(ops.refresh, settings.dashboard_refresh_seconds, what="ops"),
                name="gateway ops figures",
            ),
            asyncio.create_task(consumer.run(), name="gateway status consumer"),
            asyncio.create_task(
                run_periodically(publish_stats, STATS_INTERVAL_SECONDS, what="dashboard stats"),
                name="gateway stats",
            ),
        ]
        app.state.runtime = runtime
        log.info("Gateway ready; dashboard consuming %s", topics.ORDER_STATUS_UPDATES)
        try:
            with _close_streams_on_sigterm(runtime.closing):
                yield
        finally:
            runtime.closing.set()
            await consumer.stop()
            for task in runtime.tasks:
                task.cancel()
            await asyncio.gather(*runtime.tasks, return_exceptions=True)
            await producer.stop()
            await ops.close()
            await runtime.inventory.aclose()
            await runtime.delivery.aclose()
            await runtime.restaurants.aclose()
            await redis_client.aclose()
            await pool.close()

    app = service_app(
        "foodflow gateway",
        settings,
        description="Public HTTP edge of foodflow: menu, live dashboard and the order API.",
        lifespan=lifespan,
    )

    async def collect(app: FastAPI) -> None:
        await record_consumer_lag("gateway", app.state.runtime.consumer)

    install_probes(
        app,
        "gateway",
        checks={
            "postgres": postgres_check(lambda request: runtime_of(request).pool),
            "redis": redis_check(lambda request: runtime_of(request).redis),
            "consumer": _dashboard_consumer_assigned,
        },
        collect=collect,
    )
    install_gateway_errors(app)
    app.mount("/static", StaticFiles(packages=[("foodflow.gateway", "static")]), name="static")

    # One router per resource. The order API (orders, users, auth) is included here too.
    app.include_router(menu.router)
    app.include_router(dashboard.page_router)
    app.include_router(dashboard.router)
    app.include_router(auth.router)
    app.include_router(couriers.router)
    app.include_router(restaurants.router)
    app.include_router(orders.router)
    return app
