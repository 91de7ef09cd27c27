"""HTTP edge of the inventory service: request -> use case -> response."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Response, status
from fastapi import Path as PathParam

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
from foodflow.contracts.restaurant import ItemAvailability as ItemOffered
from foodflow.inventory_service import services
from foodflow.inventory_service.domain import (
    InventoryError,
    ItemNotFound,
    Reservation,
    ReservationConflict,
    ReservationNotFound,
    ReservationStatus,
    StockRequest,
    check_availability,
)
from foodflow.inventory_service.metrics import record_stock_levels
from foodflow.inventory_service.repository import CatalogueItem, InventoryRepository
from foodflow.inventory_service.sweeper import ReservationSweeper
from foodflow.platform.config import Settings, get_settings
from foodflow.platform.db.migrations import migrate_pool
from foodflow.platform.db.pool import create_pool
from foodflow.platform.http.app import service_app
from foodflow.platform.http.errors import batch_response, install_error_handlers
from foodflow.platform.http.probes import install_probes, postgres_check, running_check
from foodflow.platform.http.runtime import RuntimeSlot
from foodflow.platform.http.service_auth import allow, install_service_auth
from foodflow.platform.logs import batch_of, bind_order_id
from foodflow.platform.periodic import periodic_task
from foodflow.platform.secrets import require

log = logging.getLogger(__name__)

# Most specific first: the first matching class decides the status code.
ERROR_STATUS: tuple[tuple[type[InventoryError], int], ...] = (
    (ReservationNotFound, status.HTTP_404_NOT_FOUND),
    (ItemNotFound, status.HTTP_404_NOT_FOUND),
    (ReservationConflict, status.HTTP_409_CONFLICT),
    (InventoryError, status.HTTP_422_UNPROCESSABLE_CONTENT),
)

HOLDS_OR_HELD_STOCK = frozenset({ReservationStatus.RESERVED, ReservationStatus.COMMITTED})


@dataclass(frozen=True)
class InventoryRuntime:
    """What the routes and probes need, built once by the lifespan."""

    pool: asyncpg.Pool
    repository: InventoryRepository
    sweeping: asyncio.Task[None]


RUNTIME = RuntimeSlot(InventoryRuntime)
runtime_of = RUNTIME.of


Runtime = Annotated[InventoryRuntime, Depends(RUNTIME.dependency)]
ItemIdPath = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]

router = APIRouter(responses=ERROR_RESPONSES)
# Who may call what: the saga takes and settles stock, a cancelled delivery gives it back (and
# so does the saga for an order it fails after a commit may have landed: a timeout), the menu is
# read by pricing and shown by the gateway, the restaurants say which items they offer.
SAGA = [Depends(allow("order_manager"))]
CANCELLATION = [Depends(allow("delivery_service", "order_manager"))]
MENU_READERS = [Depends(allow("gateway"))]
RESTAURANTS = [Depends(allow("restaurant_service"))]
# Unlisted items too: only pricing, which must price a bench or chaos order like any other.
CATALOGUE_READERS = [Depends(allow("pricing_service"))]


def reservation_state(reservation: Reservation) -> ReservationState:
    return ReservationState(
        order_id=UUID(reservation.order_id),
        state=reservation.status.value,
        reserved=reservation.status in HOLDS_OR_HELD_STOCK,
        unknown_items=list(reservation.unknown_items),
        short_items=list(reservation.short_items),
    )


@router.post("/check_inventory", response_model=CheckInventoryResponse, dependencies=SAGA)
async def check_inventory(body: CheckInventoryRequest, runtime: Runtime) -> CheckInventoryResponse:
    """Whether each item is known and in stock now; reserves nothing."""
    log.info("Checking inventory... order_id=%s", body.order_id)
    request = StockRequest.from_lines((line.item_id, line.quantity) for line in body.items)
    shelf = await runtime.repository.shelf(request.quantities)
    availability = check_availability(request, shelf.stock, shelf.unavailable)
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


@router.post("/reserve", response_model=ReservationState, dependencies=SAGA)
async def reserve(body: ReserveRequest, runtime: Runtime) -> ReservationState:
    """Take stock for every line of an order, or none; the same order twice gets one answer."""
    order_id = str(body.order_id)
    bind_order_id(order_id)
    log.info("Checking inventory... order_id=%s", order_id)
    request = StockRequest.from_lines((line.item_id, line.quantity) for line in body.items)
    reservation = await services.reserve_stock(runtime.repository.unit_of_work(), order_id, request)
    log.info(
        "Available=%s order_id=%s state=%s",
        reservation.status in HOLDS_OR_HELD_STOCK,
        order_id,
        reservation.status,
    )
    return reservation_state(reservation)


@router.post("/commit", response_model=ReservationState, dependencies=SAGA)
async def commit(body: OrderRef, runtime: Runtime) -> ReservationState:
    """Make an order's reservation final; 404 without one, 409 once released."""
    bind_order_id(body.order_id)
    reservation = await services.commit_reservation(
        runtime.repository.unit_of_work(), str(body.order_id)
    )
    log.info("Reservation of order %s is %s", body.order_id, reservation.status)
    return reservation_state(reservation)


@router.post("/release", response_model=ReservationState, dependencies=SAGA)
async def release(body: OrderRef, runtime: Runtime) -> ReservationState:
    """Give an order's reserved stock back; 404 without a reservation, 409 once committed."""
    bind_order_id(body.order_id)
    reservation = await services.release_reservation(
        runtime.repository.unit_of_work(), str(body.order_id)
    )
    log.info("Reservation of order %s is %s", body.order_id, reservation.status)
    return reservation_state(reservation)


@router.post("/reserve_batch", response_model=BatchResponse[ReservationState], dependencies=SAGA)
async def reserve_batch(body: BatchRequest[ReserveRequest], runtime: Runtime) -> Response:
    """`/reserve` for many orders in one transaction: one outcome per order, in order."""
    requests = [
        (
            str(item.order_id),
            StockRequest.from_lines((li.item_id, li.quantity) for li in item.items),
        )
        for item in body.items
    ]
    reservations = await services.reserve_many(runtime.repository.unit_of_work(), requests)
    states = Counter(r.status.value for r in reservations)
    log.info(
        "Reserved stock for a batch of %d orders: %s",
        len(reservations),
        dict(states),
        extra=batch_of(order_id for order_id, _ in requests),
    )
    return batch_response(
        ReservationState, [reservation_state(r) for r in reservations], ERROR_STATUS
    )


@router.post("/commit_batch", response_model=BatchResponse[ReservationState], dependencies=SAGA)
async def commit_batch(body: BatchRequest[OrderRef], runtime: Runtime) -> Response:
    """`/commit` for many orders in one transaction: one outcome per order, in order."""
    return await _transition_batch(body, runtime, services.commit_many, "Committed")


@router.post("/release_batch", response_model=BatchResponse[ReservationState], dependencies=SAGA)
async def release_batch(body: BatchRequest[OrderRef], runtime: Runtime) -> Response:
    """`/release` for many orders in one transaction: one outcome per order, in order."""
    return await _transition_batch(body, runtime, services.release_many, "Released")


async def _transition_batch(
    body: BatchRequest[OrderRef],
    runtime: InventoryRuntime,
    use_case: Callable[
        [services.UnitOfWork, Sequence[str]], Awaitable[list[Reservation | InventoryError]]
    ],
    done: str,
) -> Response:
    order_ids = [str(item.order_id) for item in body.items]
    answers = await use_case(runtime.repository.unit_of_work(), order_ids)
    log.info("%s a batch of %d reservations", done, len(answers), extra=batch_of(order_ids))
    states = [a if isinstance(a, InventoryError) else reservation_state(a) for a in answers]
    return batch_response(ReservationState, states, ERROR_STATUS)


@router.post("/cancel", response_model=ReservationState, dependencies=CANCELLATION)
async def cancel(body: OrderRef, runtime: Runtime) -> ReservationState:
    """Give a cancelled (or timed-out) order's stock back, reserved or committed; 404 without
    a reservation. Once given back, a late commit of it is refused (409)."""
    reservation = await services.cancel_reservation(
        runtime.repository.unit_of_work(), str(body.order_id)
    )
    log.info("Reservation of order %s is %s (cancelled)", body.order_id, reservation.status)
    return reservation_state(reservation)


@router.get("/menu", response_model=list[MenuItem], dependencies=MENU_READERS)
async def menu(runtime: Runtime) -> list[MenuItem]:
    """The public listing: every listed item its restaurant offers now, with its price and
    current stock, by item id (what the gateway shows and takes orders for; bench and chaos
    items are not listed, items marked unavailable are hidden)."""
    return [_menu_item(item) for item in await runtime.repository.menu()]


@router.get("/catalogue", response_model=list[MenuItem], dependencies=CATALOGUE_READERS)
async def catalogue(runtime: Runtime) -> list[MenuItem]:
    """Every item, listed or not, offered or not, with its price and current stock (what
    pricing prices)."""
    return [_menu_item(item) for item in await runtime.repository.catalogue()]


@router.put("/items/{item_id}/availability", response_model=MenuItem, dependencies=RESTAURANTS)
async def item_availability(item_id: ItemIdPath, body: ItemOffered, runtime: Runtime) -> MenuItem:
    """A restaurant offers an item again or stops offering it: an unavailable item is off the
    menu and an order for it fails OUT_OF_STOCK (its stock is kept); 404 for an unknown item."""
    item = await runtime.repository.set_available(item_id, body.available)
    if item is None:
        raise ItemNotFound(item_id)
    log.info("Item %s is %s", item_id, "available" if item.available else "unavailable")
    return _menu_item(item)


def _menu_item(item: CatalogueItem) -> MenuItem:
    return MenuItem(
        item_id=item.item_id,
        name=item.name,
        price=item.price,
        stock=item.stock,
        available=item.available,
    )


async def collect_stock_levels(app: FastAPI) -> None:
    await record_stock_levels(app.state.runtime.repository)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the inventory service; its lifespan migrates its tables, owns the database pool
    and runs the reservation sweeper."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        require(settings, "service_public_keys")
        pool = await create_pool(settings)
        try:
            await migrate_pool(pool, "inventory_service", Path(__file__).parent / "migrations")
            repository = InventoryRepository(pool)
            sweeper = ReservationSweeper(repository, ttl=settings.reservation_ttl_seconds)
            async with periodic_task(
                sweeper.sweep,
                settings.sweep_interval_seconds,
                what="reservation sweep",
                initial_delay=0,
            ) as sweeping:
                app.state.runtime = InventoryRuntime(pool, repository, sweeping)
                log.info("Inventory service ready")
                yield
        finally:
            await pool.close()

    app = service_app("foodflow inventory service", settings, lifespan=lifespan)
    install_probes(
        app,
        "inventory_service",
        checks={
            "postgres": postgres_check(lambda request: runtime_of(request).pool),
            "sweeper": running_check(lambda request: not runtime_of(request).sweeping.done()),
        },
        collect=collect_stock_levels,
    )
    install_service_auth(app, "inventory_service", settings)
    app.include_router(router)
    install_error_handlers(app, ERROR_STATUS)
    return app
