"""Inventory use cases over an in-memory unit of work: the flow, without a database."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from types import TracebackType

import pytest

from foodflow.inventory_service import services
from foodflow.inventory_service.domain import (
    Reservation,
    ReservationConflict,
    ReservationNotFound,
    ReservationStatus,
    Shelf,
    StockRequest,
)

ORDER = "2d1f3c1e-0000-4000-8000-000000000002"


class FakeUnitOfWork:
    """Stock and reservations in dicts; changes are kept only when committed."""

    def __init__(self, stock: dict[str, int], unavailable: frozenset[str] = frozenset()) -> None:
        self.stock = stock
        self.unavailable = unavailable
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

    async def lock_orders(self, order_ids: Collection[str]) -> None:
        return None

    async def get_reservations(self, order_ids: Collection[str]) -> dict[str, Reservation]:
        return {
            i: self._pending_reservations[i] for i in order_ids if i in self._pending_reservations
        }

    async def lock_stock(self, item_ids: Iterable[str]) -> Shelf:
        stock = {i: self._pending_stock[i] for i in item_ids if i in self._pending_stock}
        return Shelf(stock, self.unavailable & set(stock))

    async def change_stock(self, deltas: Mapping[str, int]) -> set[str]:
        changed = set()
        for item_id, delta in deltas.items():
            if item_id in self._pending_stock and self._pending_stock[item_id] + delta >= 0:
                self._pending_stock[item_id] += delta
                changed.add(item_id)
        return changed

    async def add_reservations(self, reservations: Sequence[Reservation]) -> None:
        for reservation in reservations:
            self._pending_reservations[reservation.order_id] = reservation

    async def save_statuses(self, reservations: Sequence[Reservation]) -> None:
        for reservation in reservations:
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


async def test_an_item_its_restaurant_does_not_offer_is_short_and_takes_nothing() -> None:
    uow = FakeUnitOfWork({"a": 5, "b": 5}, unavailable=frozenset({"b"}))
    requests = [
        (order_id(1), StockRequest.from_lines([("a", 1), ("b", 1)])),
        (order_id(2), StockRequest.from_lines([("a", 1)])),
    ]

    both, only_a = await services.reserve_many(uow, requests)

    assert (both.status, both.short_items) == (ReservationStatus.REJECTED, ("b",))
    assert only_a.status is ReservationStatus.RESERVED
    assert uow.stock == {"a": 4, "b": 5}


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


def order_id(n: int) -> str:
    return f"2d1f3c1e-0000-4000-8000-{n:012d}"


async def test_a_batch_is_served_in_order_until_the_stock_runs_out() -> None:
    uow = FakeUnitOfWork({"a": 3, "b": 10})
    requests = [(order_id(n), StockRequest.from_lines([("a", 1), ("b", 1)])) for n in range(5)]

    answers = await services.reserve_many(uow, requests)

    assert [a.status for a in answers] == [ReservationStatus.RESERVED] * 3 + [
        ReservationStatus.REJECTED
    ] * 2
    assert answers[3].short_items == ("a",)
    assert uow.stock == {"a": 0, "b": 7}
    assert uow.commits == 1  # the whole batch, one transaction


async def test_an_order_twice_in_a_batch_and_a_replayed_order_take_stock_once() -> None:
    uow = FakeUnitOfWork({"a": 5})
    request = StockRequest.from_lines([("a", 2)])
    await services.reserve_stock(uow, order_id(1), request)

    answers = await services.reserve_many(
        uow, [(order_id(1), request), (order_id(2), request), (order_id(2), request)]
    )

    assert [a.order_id for a in answers] == [order_id(1), order_id(2), order_id(2)]
    assert all(a.status is ReservationStatus.RESERVED for a in answers)
    assert uow.stock == {"a": 1}


async def test_one_orders_error_in_a_batch_leaves_the_others_done() -> None:
    uow = FakeUnitOfWork({"a": 5})
    await services.reserve_many(
        uow, [(order_id(n), StockRequest.from_lines([("a", 1)])) for n in (1, 2)]
    )
    await services.commit_many(uow, [order_id(1)])

    answers = await services.release_many(uow, [order_id(1), order_id(2), order_id(3)])

    assert isinstance(answers[0], ReservationConflict)  # committed: not released
    assert isinstance(answers[1], Reservation) and answers[1].status is ReservationStatus.RELEASED
    assert isinstance(answers[2], ReservationNotFound)
    assert uow.stock == {"a": 4}  # only order 2's unit came back


async def test_cancel_gives_back_committed_stock() -> None:
    uow = FakeUnitOfWork({"a": 2})
    await services.reserve_stock(uow, ORDER, StockRequest.from_lines([("a", 2)]))
    await services.commit_reservation(uow, ORDER)
    cancelled = await services.cancel_reservation(uow, ORDER)
    assert cancelled.status is ReservationStatus.RELEASED
    assert uow.stock == {"a": 2}
