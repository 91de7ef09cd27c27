"""HTTP edge and composition root of the restaurant service: request -> use case -> response,
the consumer of the orders' status events, the periodic timeout sweep."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from uuid import UUID

import asyncpg
from confluent_kafka import Message
from fastapi import APIRouter, Depends, FastAPI, status
from fastapi import Path as PathParam
from pydantic import ValidationError

from foodflow.clients.inventory import InventoryClient
from foodflow.contracts import topics
from foodflow.contracts.orders import FailureReason, OrderStatus, OrderStatusUpdate
from foodflow.contracts.restaurant import (
    AcceptTicket,
    DelayTicket,
    ItemAvailability,
    MenuEntry,
    OpeningChange,
    OrderCheck,
    OrderCheckResult,
    RejectTicket,
    Restaurants,
    RestaurantView,
    Tickets,
    TicketState,
    TicketView,
)
from foodflow.orders.announcer import KafkaAnnouncer
from foodflow.orders.records import migrate_orders
from foodflow.orders.status_store import OrderStateStore, StatusCache
from foodflow.platform.config import Settings, get_settings
from foodflow.platform.db.migrations import migrate_pool
from foodflow.platform.db.pool import DATABASE_UNAVAILABLE_ERRORS, create_pool
from foodflow.platform.db.redis import create_redis
from foodflow.platform.errors import ServiceUnavailable
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
from foodflow.restaurant_service import services
from foodflow.restaurant_service.domain import (
    InvalidOpening,
    NotFound,
    RestaurantError,
    TicketConflict,
)
from foodflow.restaurant_service.order_status import OrderStatusMover
from foodflow.restaurant_service.repository import KitchenRepository

log = logging.getLogger(__name__)
SERVICE = "restaurant_service"
CONSUMER_GROUP = "restaurant_service"
MIGRATIONS = Path(__file__).parent / "migrations"
CONSUMER_STOP_SECONDS = 30
# What the consumer acts on; every other status event is not this service's business.
WATCHED = frozenset({OrderStatus.CONFIRMED, OrderStatus.CANCELLED, OrderStatus.PICKED_UP})
# A sweep round meeting these skips to the next: PostgreSQL (or the order state) is away.
OUTAGE: tuple[type[Exception], ...] = (*DATABASE_UNAVAILABLE_ERRORS, ServiceUnavailable)

# Most specific first: the first matching class decides the status code.
ERROR_STATUS: tuple[tuple[type[RestaurantError], int], ...] = (
    (NotFound, status.HTTP_404_NOT_FOUND),
    (TicketConflict, status.HTTP_409_CONFLICT),
    (InvalidOpening, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (RestaurantError, status.HTTP_400_BAD_REQUEST),
)


@dataclass(frozen=True)
class RestaurantRuntime:
    """What the routes and probes need, built once by the lifespan."""

    pool: asyncpg.Pool
    ports: services.RestaurantPorts
    consumer: asyncio.Task[None]
    sweeper: asyncio.Task[None]


RUNTIME = RuntimeSlot(RestaurantRuntime)
runtime_of = RUNTIME.of


Runtime = Annotated[RestaurantRuntime, Depends(RUNTIME.dependency)]
RestaurantId = Annotated[
    str, PathParam(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
]
ItemId = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
# Who may call what: the gateway relays its restaurant staff's requests and shows the
# restaurants; the order check is asked before an order is taken (by the gateway; the order
# manager may ask too).
STAFF = [Depends(allow("gateway"))]
ORDER_CHECK = [Depends(allow("gateway", "order_manager"))]
router = APIRouter()


@router.get("/restaurants", response_model=Restaurants, dependencies=STAFF)
async def restaurants(runtime: Runtime) -> Restaurants:
    """Every restaurant with its opening (open now or not), load and menu."""
    return Restaurants(restaurants=await services.list_restaurants(runtime.ports))


@router.get("/restaurants/{restaurant_id}", response_model=RestaurantView, dependencies=STAFF)
async def restaurant(restaurant_id: RestaurantId, runtime: Runtime) -> RestaurantView:
    """One restaurant with its opening, load and menu; 404 for an unknown one."""
    return await services.get_restaurant(runtime.ports, restaurant_id)


@router.post("/check_order", response_model=OrderCheckResult, dependencies=ORDER_CHECK)
async def check_order(body: OrderCheck, runtime: Runtime) -> OrderCheckResult:
    """Whether the restaurant that would cook these items takes an order now (open, every
    item available), and which restaurant that is."""
    return await services.check_order(runtime.ports, body.item_ids)


@router.get("/restaurants/{restaurant_id}/tickets", response_model=Tickets, dependencies=STAFF)
async def tickets(
    restaurant_id: RestaurantId, runtime: Runtime, state: TicketState | None = None
) -> Tickets:
    """The restaurant's tickets in `state` (the open ones when not given), oldest first, with
    what the kitchen could promise for each."""
    return Tickets(tickets=await services.list_tickets(runtime.ports, restaurant_id, state))


@router.get(
    "/restaurants/{restaurant_id}/tickets/{order_id}",
    response_model=TicketView,
    dependencies=STAFF,
)
async def ticket(restaurant_id: RestaurantId, order_id: UUID, runtime: Runtime) -> TicketView:
    """One order's ticket; 404 for an order of another restaurant."""
    return await services.get_ticket(runtime.ports, restaurant_id, order_id)


@router.post(
    "/restaurants/{restaurant_id}/tickets/{order_id}/accept",
    response_model=TicketView,
    dependencies=STAFF,
)
async def accept(
    restaurant_id: RestaurantId, order_id: UUID, body: AcceptTicket, runtime: Runtime
) -> TicketView:
    """Accept an order, ready in `ready_in_minutes`: PENDING → ACCEPTED, the order
    RESTAURANT_ACCEPTED with the kitchen's plan; 409 once answered otherwise."""
    return await services.accept(runtime.ports, restaurant_id, order_id, body.ready_in_minutes)


@router.post(
    "/restaurants/{restaurant_id}/tickets/{order_id}/prepare",
    response_model=TicketView,
    dependencies=STAFF,
)
async def prepare(restaurant_id: RestaurantId, order_id: UUID, runtime: Runtime) -> TicketView:
    """The kitchen started cooking: ACCEPTED → PREPARING (the order too)."""
    return await services.prepare(runtime.ports, restaurant_id, order_id)


@router.post(
    "/restaurants/{restaurant_id}/tickets/{order_id}/delay",
    response_model=TicketView,
    dependencies=STAFF,
)
async def delay(
    restaurant_id: RestaurantId, order_id: UUID, body: DelayTicket, runtime: Runtime
) -> TicketView:
    """The food is now ready in `ready_in_minutes`: PREPARING with the new ready-by time (the
    order PREPARING again, with it)."""
    return await services.delay(runtime.ports, restaurant_id, order_id, body.ready_in_minutes)


@router.post(
    "/restaurants/{restaurant_id}/tickets/{order_id}/ready",
    response_model=TicketView,
    dependencies=STAFF,
)
async def ready(restaurant_id: RestaurantId, order_id: UUID, runtime: Runtime) -> TicketView:
    """The food is ready: READY, the order READY_FOR_PICKUP."""
    return await services.ready(runtime.ports, restaurant_id, order_id)


@router.post(
    "/restaurants/{restaurant_id}/tickets/{order_id}/reject",
    response_model=TicketView,
    dependencies=STAFF,
)
async def reject(
    restaurant_id: RestaurantId, order_id: UUID, body: RejectTicket, runtime: Runtime
) -> TicketView:
    """Turn an order down (closed, an item out, too busy): PENDING → REJECTED, the order
    RESTAURANT_REJECTED (then refunded and cancelled); 409 once accepted."""
    return await services.reject(
        runtime.ports, restaurant_id, order_id, FailureReason(body.reason), body.detail
    )


@router.put(
    "/restaurants/{restaurant_id}/items/{item_id}/availability",
    response_model=MenuEntry,
    dependencies=STAFF,
)
async def availability(
    restaurant_id: RestaurantId, item_id: ItemId, body: ItemAvailability, runtime: Runtime
) -> MenuEntry:
    """Mark an item of this restaurant's menu available or not, here and in the catalogue
    customers order from; 404 for an item not on this restaurant's menu."""
    return await services.set_availability(runtime.ports, restaurant_id, item_id, body.available)


@router.put(
    "/restaurants/{restaurant_id}/opening", response_model=RestaurantView, dependencies=STAFF
)
async def opening(
    restaurant_id: RestaurantId, body: OpeningChange, runtime: Runtime
) -> RestaurantView:
    """Pause or resume taking orders (`accepting`), or change the hours (`opens_at` and
    `closes_at` together, local time)."""
    return await services.set_opening(runtime.ports, restaurant_id, body)


def order_events(ports: services.RestaurantPorts) -> BatchHandler:
    """`handle_batch` over `order_status_updates`: a confirmed order with an address becomes a
    ticket, a cancelled or collected one closes its ticket. Other events, and events that do
    not parse, are not this service's business."""

    async def handle(messages: list[Message]) -> None:
        updates = []
        for msg in messages:
            try:
                update = OrderStatusUpdate.model_validate_json(msg.value() or b"")
            except ValidationError:
                continue
            if update.status in WATCHED:
                updates.append(update)
        await services.order_events(ports, updates)

    return handle


def timeout_sweep(ports: services.RestaurantPorts) -> Callable[[], Awaitable[None]]:
    """One round of the timeout sweep; a database that is down skips it with a warning (the
    next round retries)."""

    async def sweep() -> None:
        try:
            await services.expire_pending(ports)
        except OUTAGE as exc:
            log.warning("Restaurant timeout sweep skipped: %s", exc)

    return sweep


async def _stop_consumer(consumer: BatchConsumer, running: asyncio.Task[None]) -> None:
    await consumer.stop()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(running, timeout=CONSUMER_STOP_SECONDS)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the restaurant service; its lifespan owns the pool, Redis, Kafka and the
    inventory client, the consumer and the sweeper."""
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
            inventory = InventoryClient(settings, tokens)
            stack.push_async_callback(inventory.aclose)
            store = OrderStateStore(
                pool, StatusCache(redis_client, settings.order_status_ttl_seconds)
            )
            ports = services.RestaurantPorts(
                kitchens=KitchenRepository(pool),
                statuses=OrderStatusMover(store, KafkaAnnouncer(producer)),
                catalogue=inventory,
                accept_timeout_seconds=settings.restaurant_accept_timeout_seconds,
            )
            consumer = BatchConsumer(
                settings,
                [topics.ORDER_STATUS_UPDATES],
                CONSUMER_GROUP,
                order_events(ports),
                config={"auto.offset.reset": "latest"},
                dead_letter=DeadLetterPublisher(producer),
            )
            await consumer.start()
            consuming = asyncio.create_task(consumer.run(), name="status consumer")
            stack.push_async_callback(_stop_consumer, consumer, consuming)
            sweeping = await stack.enter_async_context(
                periodic_task(
                    timeout_sweep(ports),
                    settings.restaurant_sweep_interval_seconds,
                    what="Restaurant timeout sweep",
                    initial_delay=0,
                )
            )
            app.state.runtime = RestaurantRuntime(pool, ports, consuming, sweeping)
            log.info("%s consuming %s as %s", SERVICE, topics.ORDER_STATUS_UPDATES, CONSUMER_GROUP)
            yield

    app = service_app("foodflow restaurant service", settings, lifespan=lifespan)
    install_probes(
        app,
        SERVICE,
        checks={
            "postgres": postgres_check(lambda request: runtime_of(request).pool),
            "consumer": running_check(lambda request: not runtime_of(request).consumer.done()),
            "sweeper": running_check(lambda request: not runtime_of(request).sweeper.done()),
        },
    )
    install_service_auth(app, SERVICE, settings)
    app.include_router(router)
    install_error_handlers(app, ERROR_STATUS)
    return app
