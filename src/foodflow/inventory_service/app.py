"""HTTP edge of the inventory service: request -> use case -> response."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Request, Response, status

from foodflow.contracts.batch import BatchRequest, BatchResponse
from foodflow.contracts.errors import ERROR_RESPONSES
from foodflow.contracts.inventory import (
    CheckInventoryRequest,
    CheckInventoryResponse,
    ItemAvailability,
    MenuItem,
    OrderRef,
    ReservationState,
    ReserveRequest,
)
from foodflow.inventory_service import services
from foodflow.inventory_service.domain import (
    InventoryError,
    Reservation,
    ReservationConflict,
    ReservationNotFound,
    ReservationStatus,
    StockRequest,
    check_availability,
)
from foodflow.inventory_service.metrics import collect_stock_levels
from foodflow.inventory_service.repository import InventoryRepository
from foodflow.inventory_service.sweeper import ReservationSweeper
from foodflow.platform.config import Settings, get_settings
from foodflow.platform.db.pool import create_pool
from foodflow.platform.http.errors import batch_response, install_error_handlers
from foodflow.platform.http.probes import database_health_router
from foodflow.platform.logs import bind_order_id
from foodflow.platform.metrics import install_metrics

log = logging.getLogger(__name__)

# Most specific first: the first matching class decides the status code.
ERROR_STATUS: tuple[tuple[type[InventoryError], int], ...] = (
    (ReservationNotFound, status.HTTP_404_NOT_FOUND),
    (ReservationConflict, status.HTTP_409_CONFLICT),
    (InventoryError, status.HTTP_422_UNPROCESSABLE_CONTENT),
)

HOLDS_OR_HELD_STOCK = frozenset({ReservationStatus.RESERVED, ReservationStatus.COMMITTED})


@dataclass(frozen=True)
class InventoryContext:
    """What the routes need, built once by the lifespan."""

    pool: asyncpg.Pool
    repository: InventoryRepository


async def get_context(request: Request) -> InventoryContext:  # async: no thread-pool hop
    context: InventoryContext = request.app.state.inventory
    return context


Context = Annotated[InventoryContext, Depends(get_context)]

router = APIRouter(responses=ERROR_RESPONSES)


def reservation_state(reservation: Reservation) -> ReservationState:
    return ReservationState(
        order_id=UUID(reservation.order_id),
        state=reservation.status.value,
        reserved=reservation.status in HOLDS_OR_HELD_STOCK,
        unknown_items=list(reservation.unknown_items),
        short_items=list(reservation.short_items),
    )


@router.post("/check_inventory", response_model=CheckInventoryResponse)
async def check_inventory(body: CheckInventoryRequest, context: Context) -> CheckInventoryResponse:
    """Whether each item is known and in stock now; reserves nothing."""
    log.info("Checking inventory... order_id=%s", body.order_id)
    request = StockRequest.from_lines((line.item_id, line.quantity) for line in body.items)
    stock = await context.repository.stock_levels(request.quantities)
    availability = check_availability(request, stock)
    available = all(item.available for item in availability)
    log.info("Available=%s order_id=%s", available, body.order_id)
    return CheckInventoryResponse(
        available=available,
        items=[
            ItemAvailability(
                item_id=item.item_id,
                requested=item.requested,
                in_stock=item.in_stock,
                available=item.available,
                known=item.known,
            )
            for item in availability
        ],
    )


@router.post("/reserve", response_model=ReservationState)
async def reserve(body: ReserveRequest, context: Context) -> ReservationState:
    """Take stock for every line of an order, or none; the same order twice gets one answer."""
    order_id = str(body.order_id)
    bind_order_id(order_id)
    log.info("Checking inventory... order_id=%s", order_id)
    request = StockRequest.from_lines((line.item_id, line.quantity) for line in body.items)
    reservation = await services.reserve_stock(context.repository.unit_of_work(), order_id, request)
    log.info(
        "Available=%s order_id=%s state=%s",
        reservation.status in HOLDS_OR_HELD_STOCK,
        order_id,
        reservation.status,
    )
    return reservation_state(reservation)


@router.post("/commit", response_model=ReservationState)
async def commit(body: OrderRef, context: Context) -> ReservationState:
    """Make an order's reservation final; 404 without one, 409 once released."""
    bind_order_id(body.order_id)
    reservation = await services.commit_reservation(
        context.repository.unit_of_work(), str(body.order_id)
    )
    log.info("Reservation of order %s is %s", body.order_id, reservation.status)
    return reservation_state(reservation)


@router.post("/release", response_model=ReservationState)
async def release(body: OrderRef, context: Context) -> ReservationState:
    """Give an order's reserved stock back; 404 without a reservation, 409 once committed."""
    bind_order_id(body.order_id)
    reservation = await services.release_reservation(
        context.repository.unit_of_work(), str(body.order_id)
    )
    log.info("Reservation of order %s is %s", body.order_id, reservation.status)
    return reservation_state(reservation)


@router.post("/reserve_batch", response_model=BatchResponse[ReservationState])
async def reserve_batch(body: BatchRequest[ReserveRequest], context: Context) -> Response:
    """`/reserve` for many orders in one transaction: one outcome per order, in order."""
    requests = [
        (
            str(item.order_id),
            StockRequest.from_lines((li.item_id, li.quantity) for li in item.items),
        )
        for item in body.items
    ]
    reservations = await services.reserve_many(context.repository.unit_of_work(), requests)
    states = Counter(r.status.value for r in reservations)
    log.info("Reserved stock for a batch of %d orders: %s", len(reservations), dict(states))
    return batch_response(
        ReservationState, [reservation_state(r) for r in reservations], ERROR_STATUS
    )


@router.post("/commit_batch", response_model=BatchResponse[ReservationState])
async def commit_batch(body: BatchRequest[OrderRef], context: Context) -> Response:
    """`/commit` for many orders in one transaction: one outcome per order, in order."""
    return await _transition_batch(body, context, services.commit_many, "Committed")


@router.post("/release_batch", response_model=BatchResponse[ReservationState])
async def release_batch(body: BatchRequest[OrderRef], context: Context) -> Response:
    """`/release` for many orders in one transaction: one outcome per order, in order."""
    return await _transition_batch(body, context, services.release_many, "Released")


async def _transition_batch(
    body: BatchRequest[OrderRef],
    context: InventoryContext,
    use_case: Callable[
        [services.UnitOfWork, Sequence[str]], Awaitable[list[Reservation | InventoryError]]
    ],
    done: str,
) -> Response:
    answers = await use_case(
        context.repository.unit_of_work(), [str(item.order_id) for item in body.items]
    )
    log.info("%s a batch of %d reservations", done, len(answers))
    states = [a if isinstance(a, InventoryError) else reservation_state(a) for a in answers]
    return batch_response(ReservationState, states, ERROR_STATUS)


@router.post("/cancel", response_model=ReservationState)
async def cancel(body: OrderRef, context: Context) -> ReservationState:
    """Give a cancelled order's stock back, reserved or committed; 404 without a reservation."""
    reservation = await services.cancel_reservation(
        context.repository.unit_of_work(), str(body.order_id)
    )
    log.info("Reservation of order %s is %s (cancelled)", body.order_id, reservation.status)
    return reservation_state(reservation)


@router.get("/menu", response_model=list[MenuItem])
async def menu(context: Context) -> list[MenuItem]:
    """Every catalogue item with its price and current stock, by item id."""
    return [
        MenuItem(item_id=item.item_id, name=item.name, price=item.price, stock=item.stock)
        for item in await context.repository.menu()
    ]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the inventory service; its lifespan owns the database pool."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings)
        repository = InventoryRepository(pool)
        sweeper = ReservationSweeper(
            repository,
            ttl=settings.reservation_ttl_seconds,
            interval=settings.sweep_interval_seconds,
        )
        sweep_task = asyncio.create_task(sweeper.run(), name="reservation sweeper")
        try:
            app.state.inventory = InventoryContext(pool=pool, repository=repository)
            log.info("Inventory service ready")
            yield
        finally:
            sweeper.stop()
            await sweep_task
            await pool.close()

    app = FastAPI(title="foodflow inventory service", lifespan=lifespan)
    install_metrics(app, "inventory_service", collect=collect_stock_levels)
    app.include_router(router)
    app.include_router(database_health_router(lambda request: request.app.state.inventory.pool))
    install_error_handlers(app, ERROR_STATUS)
    return app
