"""Use cases of the inventory: each runs in one unit of work and returns the reservation.

Handlers receive a unit of work (anything shaped like `UnitOfWork`), never a connection, so
the same code runs against PostgreSQL in the service and against a fake in a unit test.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from types import TracebackType
from typing import Protocol, Self

from foodflow.inventory_service.domain import (
    Reservation,
    ReservationNotFound,
    ReservationStatus,
    StockRequest,
    decide_reservation,
)

log = logging.getLogger(__name__)


class UnitOfWork(Protocol):
    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...
    async def commit(self) -> None: ...
    async def lock_order(self, order_id: str) -> None: ...
    async def get_reservation(self, order_id: str) -> Reservation | None: ...
    async def lock_stock(self, item_ids: Iterable[str]) -> dict[str, int]: ...
    async def take_stock(self, item_id: str, quantity: int) -> bool: ...
    async def return_stock(self, item_id: str, quantity: int) -> bool: ...
    async def add_reservation(self, reservation: Reservation) -> None: ...
    async def save_status(self, reservation: Reservation) -> None: ...


async def reserve_stock(uow: UnitOfWork, order_id: str, request: StockRequest) -> Reservation:
    """Reserve every line or none. A repeated request returns the first answer unchanged."""
    async with uow:
        await uow.lock_order(order_id)
        existing = await uow.get_reservation(order_id)
        if existing is not None:
            log.info("Reservation of order %s already %s", order_id, existing.status)
            return existing
        stock = await uow.lock_stock(request.lock_order)
        reservation = decide_reservation(order_id, request, stock)
        if reservation.holds_stock:
            for item_id in request.lock_order:
                if not await uow.take_stock(item_id, request.quantities[item_id]):
                    # The rows are locked since lock_stock, so this means a broken invariant;
                    # raising rolls back every decrement made so far.
                    raise RuntimeError(f"stock of {item_id} changed under a row lock")
        await uow.add_reservation(reservation)
        await uow.commit()
    return reservation


async def commit_reservation(uow: UnitOfWork, order_id: str) -> Reservation:
    """Make a reservation final (RESERVED -> COMMITTED); stock was taken at reserve time."""
    async with uow:
        current = await uow.get_reservation(order_id)
        if current is None:
            raise ReservationNotFound(order_id)
        committed = current.commit()
        if committed.status is not current.status:
            await uow.save_status(committed)
            await uow.commit()
    return committed


async def cancel_reservation(uow: UnitOfWork, order_id: str) -> Reservation:
    """Give back the stock of a cancelled order, reserved or committed (-> RELEASED)."""
    async with uow:
        current = await uow.get_reservation(order_id)
        if current is None:
            raise ReservationNotFound(order_id)
        cancelled = current.cancel()
        if current.holds_stock or current.status is ReservationStatus.COMMITTED:
            returned_ids = sorted(current.items)
            await uow.lock_stock(returned_ids)
            for item_id in returned_ids:
                await uow.return_stock(item_id, current.items[item_id])
            await uow.save_status(cancelled)
            await uow.commit()
    return cancelled


async def release_reservation(uow: UnitOfWork, order_id: str) -> Reservation:
    """Give the stock of a RESERVED reservation back (RESERVED -> RELEASED)."""
    async with uow:
        current = await uow.get_reservation(order_id)
        if current is None:
            raise ReservationNotFound(order_id)
        released = current.release()
        if current.status is ReservationStatus.RESERVED:
            returned_ids = sorted(current.items)
            await uow.lock_stock(returned_ids)
            for item_id in returned_ids:
                if not await uow.return_stock(item_id, current.items[item_id]):
                    log.warning(
                        "Item %s of order %s left the catalogue; its stock is not returned",
                        item_id,
                        order_id,
                    )
            await uow.save_status(released)
            await uow.commit()
    return released
