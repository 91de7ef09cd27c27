"""Inventory use cases over an in-memory unit of work: the flow, without a database."""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType

import pytest

from foodflow.inventory_service import services
from foodflow.inventory_service.domain import (
    Reservation,
    ReservationConflict,
    ReservationNotFound,
    ReservationStatus,
    StockRequest,
)

ORDER = "2d1f3c1e-0000-4000-8000-000000000002"


class FakeUnitOfWork:
    """Stock and reservations in dicts; changes are kept only when committed."""

    def __init__(self, stock: dict[str, int]) -> None:
        self.stock = stock
        self.reservations: dict[str, Reservation] = {}
        self._pending_stock: dict[str, int] = {}
        self._pending_reservations: dict[str, Reservation] = {}
        self.commits = 0

    async def __aenter__(self) -> FakeUnitOfWork:
        self._pending_stock = dict(self.stock)
        self._pending_reservations = dict(self.reservations)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    async def commit(self) -> None:
        self.stock = dict(self._pending_stock)
        self.reservations = dict(self._pending_reservations)
        self.commits += 1

    async def lock_order(self, order_id: str) -> None:
        return None

    async def get_reservation(self, order_id: str) -> Reservation | None:
        return self._pending_reservations.get(order_id)

    async def lock_stock(self, item_ids: Iterable[str]) -> dict[str, int]:
        return {i: self._pending_stock[i] for i in item_ids if i in self._pending_stock}

    async def take_stock(self, item_id: str, quantity: int) -> bool:
        if self._pending_stock.get(item_id, 0) < quantity:
            return False
        self._pending_stock[item_id] -= quantity
        return True

    async def return_stock(self, item_id: str, quantity: int) -> bool:
        self._pending_stock[item_id] += quantity
        return True

    async def add_reservation(self, reservation: Reservation) -> None:
        self._pending_reservations[reservation.order_id] = reservation

    async def save_status(self, reservation: Reservation) -> None:
        self._pending_reservations[reservation.order_id] = reservation


async def test_reserve_then_release_returns_stock() -> None:
    uow = FakeUnitOfWork({"a": 5, "b": 1})
    request = StockRequest.from_lines([("a", 2), ("b", 1)])

    first = await services.reserve_stock(uow, ORDER, request)
    again = await services.reserve_stock(uow, ORDER, request)

    assert first.status is again.status is ReservationStatus.RESERVED
    assert uow.stock == {"a": 3, "b": 0}
    released = await services.release_reservation(uow, ORDER)
    assert released.status is ReservationStatus.RELEASED
    assert uow.stock == {"a": 5, "b": 1}
    assert (await services.release_reservation(uow, ORDER)).status is ReservationStatus.RELEASED
    assert uow.stock == {"a": 5, "b": 1}


async def test_rejected_reserve_is_recorded_and_takes_nothing() -> None:
    uow = FakeUnitOfWork({"a": 1})
    rejected = await services.reserve_stock(uow, ORDER, StockRequest.from_lines([("a", 2)]))
    assert rejected.status is ReservationStatus.REJECTED
    assert rejected.short_items == ("a",)
    assert uow.stock == {"a": 1}
    assert uow.reservations[ORDER].status is ReservationStatus.REJECTED


async def test_commit_is_final() -> None:
    uow = FakeUnitOfWork({"a": 1})
    await services.reserve_stock(uow, ORDER, StockRequest.from_lines([("a", 1)]))
    assert (await services.commit_reservation(uow, ORDER)).status is ReservationStatus.COMMITTED
    commits = uow.commits
    assert (await services.commit_reservation(uow, ORDER)).status is ReservationStatus.COMMITTED
    assert uow.commits == commits
    with pytest.raises(ReservationConflict):
        await services.release_reservation(uow, ORDER)
    assert uow.stock == {"a": 0}


async def test_missing_reservation_is_not_found() -> None:
    uow = FakeUnitOfWork({})
    with pytest.raises(ReservationNotFound):
        await services.commit_reservation(uow, ORDER)
    with pytest.raises(ReservationNotFound):
        await services.release_reservation(uow, ORDER)
    assert uow.reservations == {}
