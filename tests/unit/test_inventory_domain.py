"""Stock arithmetic and the reservation state machine, pure."""

from __future__ import annotations

import pytest

from foodflow.inventory_service.domain import (
    InventoryError,
    Reservation,
    ReservationConflict,
    ReservationStatus,
    StockRequest,
    check_availability,
    decide_reservation,
)

ORDER = "2d1f3c1e-0000-4000-8000-000000000001"


def test_lines_of_one_item_add_up_and_lock_order_is_sorted() -> None:
    request = StockRequest.from_lines([("pho-bo", 1), ("banh-mi", 2), ("pho-bo", 2)])
    assert dict(request.quantities) == {"pho-bo": 3, "banh-mi": 2}
    assert request.lock_order == ["banh-mi", "pho-bo"]


def test_quantity_below_one_is_refused() -> None:
    with pytest.raises(InventoryError):
        StockRequest.from_lines([("pho-bo", 0)])


def test_availability_per_item() -> None:
    request = StockRequest.from_lines([("a", 2), ("b", 5), ("ghost", 1)])
    result = {item.item_id: item for item in check_availability(request, {"a": 2, "b": 4})}
    assert result["a"].available and result["a"].known
    assert not result["b"].available and result["b"].known
    assert not result["ghost"].available and not result["ghost"].known


def test_reservation_is_all_or_nothing() -> None:
    request = StockRequest.from_lines([("a", 1), ("b", 5), ("ghost", 1)])
    rejected = decide_reservation(ORDER, request, {"a": 10, "b": 4})
    assert rejected.status is ReservationStatus.REJECTED
    assert rejected.unknown_items == ("ghost",)
    assert rejected.short_items == ("b",)

    reserved = decide_reservation(ORDER, StockRequest.from_lines([("a", 10)]), {"a": 10})
    assert reserved.status is ReservationStatus.RESERVED
    assert reserved.holds_stock


def test_an_item_not_offered_now_is_short_whatever_its_stock() -> None:
    request = StockRequest.from_lines([("a", 1), ("b", 1)])
    result = {i.item_id: i for i in check_availability(request, {"a": 9, "b": 9}, {"b"})}
    assert result["a"].available
    assert result["b"].known and not result["b"].offered and not result["b"].available
    assert result["b"].in_stock == 9  # the stock is kept for when it is offered again

    rejected = decide_reservation(ORDER, request, {"a": 9, "b": 9}, frozenset({"b"}))
    assert rejected.status is ReservationStatus.REJECTED
    assert (rejected.unknown_items, rejected.short_items) == ((), ("b",))


def reservation(status: ReservationStatus) -> Reservation:
    return Reservation(ORDER, status, {"a": 1})


@pytest.mark.parametrize(
    ("start", "committed"),
    [
        (ReservationStatus.RESERVED, ReservationStatus.COMMITTED),
        (ReservationStatus.COMMITTED, ReservationStatus.COMMITTED),
    ],
)
def test_commit_transitions(start: ReservationStatus, committed: ReservationStatus) -> None:
    assert reservation(start).commit().status is committed


@pytest.mark.parametrize("start", [ReservationStatus.RELEASED, ReservationStatus.REJECTED])
def test_commit_conflicts(start: ReservationStatus) -> None:
    with pytest.raises(ReservationConflict):
        reservation(start).commit()


@pytest.mark.parametrize(
    ("start", "released"),
    [
        (ReservationStatus.RESERVED, ReservationStatus.RELEASED),
        (ReservationStatus.RELEASED, ReservationStatus.RELEASED),
        (ReservationStatus.REJECTED, ReservationStatus.REJECTED),
    ],
)
def test_release_transitions(start: ReservationStatus, released: ReservationStatus) -> None:
    assert reservation(start).release().status is released


def test_committed_cannot_be_released() -> None:
    with pytest.raises(ReservationConflict, match="COMMITTED"):
        reservation(ReservationStatus.COMMITTED).release()


def test_cancel_gives_back_reserved_or_committed_stock_once() -> None:
    from foodflow.inventory_service.domain import Reservation, ReservationStatus

    reserved = Reservation("o-1", ReservationStatus.RESERVED, {"pho-bo": 2})
    assert reserved.cancel().status is ReservationStatus.RELEASED
    assert reserved.commit().cancel().status is ReservationStatus.RELEASED
    released = reserved.release()
    assert released.cancel() == released
