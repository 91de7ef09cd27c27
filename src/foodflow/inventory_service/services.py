"""Use cases of the inventory: each runs in one unit of work and returns the reservations.

Every use case takes many orders at once (the order manager sends its calls in batches) and
does the whole batch in one transaction with a fixed number of statements, whatever its size:
lock the orders, read their reservations, lock the stock rows they touch, decide each order in
memory in the batch's order, write every change at once. The single-order endpoints are
batches of one.

Handlers receive a unit of work (anything shaped like `UnitOfWork`), never a connection, so
the same code runs against PostgreSQL in the service and against a fake in a unit test.

Locks are always taken in the same order — order advisory locks (sorted), reservation rows
(sorted), item rows (sorted) — so two batches never wait on each other in a cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Protocol

from foodflow.inventory_service.domain import (
    InventoryError,
    Reservation,
    ReservationNotFound,
    ReservationStatus,
    Shelf,
    StockRequest,
    decide_reservation,
)
from foodflow.platform.db.unit_of_work import Transaction

log = logging.getLogger(__name__)


class UnitOfWork(Transaction, Protocol):
    async def lock_orders(self, order_ids: Collection[str]) -> None: ...
    async def get_reservations(self, order_ids: Collection[str]) -> dict[str, Reservation]: ...
    async def lock_stock(self, item_ids: Iterable[str]) -> Shelf: ...
    async def change_stock(self, deltas: Mapping[str, int]) -> set[str]: ...
    async def add_reservations(self, reservations: Sequence[Reservation]) -> None: ...
    async def save_statuses(self, reservations: Sequence[Reservation]) -> None: ...


async def reserve_many(
    uow: UnitOfWork, requests: Sequence[tuple[str, StockRequest]]
) -> list[Reservation]:
    """Reserve every line of each order or none of it, first come first served within the
    batch. An order reserved before (or twice in the batch) gets its first answer unchanged."""
    order_ids = [order_id for order_id, _ in requests]
    async with uow:
        await uow.lock_orders(order_ids)
        decided = await uow.get_reservations(order_ids)
        new = [(order_id, request) for order_id, request in requests if order_id not in decided]
        shelf = await uow.lock_stock({item for _, r in new for item in r.quantities})
        available = dict(shelf.stock)
        taken: dict[str, int] = {}
        added: list[Reservation] = []
        for order_id, request in new:
            if order_id in decided:  # the same order twice in one batch
                continue
            reservation = decide_reservation(order_id, request, available, shelf.unavailable)
            if reservation.holds_stock:
                for item_id, quantity in request.quantities.items():
                    available[item_id] -= quantity
                    taken[item_id] = taken.get(item_id, 0) - quantity
            decided[order_id] = reservation
            added.append(reservation)
        if added:
            changed = await uow.change_stock(taken)
            if changed != set(taken):
                # The rows are locked since lock_stock, so this means a broken invariant;
                # raising rolls back every decrement made so far.
                raise RuntimeError(f"stock of {set(taken) - changed} changed under a row lock")
            await uow.add_reservations(added)
            await uow.commit()
    return [decided[order_id] for order_id in order_ids]


Transition = Callable[[Reservation], Reservation]


async def _transition_many(
    uow: UnitOfWork, order_ids: Sequence[str], transition: Transition, *, returns_stock: bool
) -> list[Reservation | InventoryError]:
    """Apply `transition` to each order's reservation; an order's domain error is its answer.

    With `returns_stock`, a reservation that held stock (RESERVED) or had taken it for good
    (COMMITTED) and ends RELEASED puts its quantities back on the shelf.
    """
    answers: list[Reservation | InventoryError] = []
    async with uow:
        current = await uow.get_reservations(order_ids)
        changed: dict[str, Reservation] = {}
        returned: dict[str, int] = {}
        for order_id in order_ids:
            before = current.get(order_id)
            if before is None:
                answers.append(ReservationNotFound(order_id))
                continue
            try:
                after = transition(before)
            except InventoryError as exc:
                answers.append(exc)
                continue
            answers.append(after)
            if after.status is before.status:
                continue
            current[order_id] = changed[order_id] = after
            if returns_stock and after.status is ReservationStatus.RELEASED:
                for item_id, quantity in before.items.items():
                    returned[item_id] = returned.get(item_id, 0) + quantity
        if changed:
            if returned:
                await uow.lock_stock(returned)
                gone = set(returned) - await uow.change_stock(returned)
                for item_id in sorted(gone):
                    log.warning("Item %s left the catalogue; its stock is not returned", item_id)
            await uow.save_statuses(list(changed.values()))
            await uow.commit()
    return answers


async def commit_many(
    uow: UnitOfWork, order_ids: Sequence[str]
) -> list[Reservation | InventoryError]:
    """Make reservations final (RESERVED -> COMMITTED); stock was taken at reserve time."""
    return await _transition_many(uow, order_ids, Reservation.commit, returns_stock=False)


async def release_many(
    uow: UnitOfWork, order_ids: Sequence[str]
) -> list[Reservation | InventoryError]:
    """Give the stock of RESERVED reservations back (RESERVED -> RELEASED)."""
    return await _transition_many(uow, order_ids, Reservation.release, returns_stock=True)


async def cancel_many(
    uow: UnitOfWork, order_ids: Sequence[str]
) -> list[Reservation | InventoryError]:
    """Give cancelled orders' stock back, reserved or committed (-> RELEASED)."""
    return await _transition_many(uow, order_ids, Reservation.cancel, returns_stock=True)


def _one(answers: list[Reservation | InventoryError]) -> Reservation:
    (answer,) = answers
    if isinstance(answer, InventoryError):
        raise answer
    return answer


async def reserve_stock(uow: UnitOfWork, order_id: str, request: StockRequest) -> Reservation:
    """Reserve every line or none. A repeated request returns the first answer unchanged."""
    (reservation,) = await reserve_many(uow, [(order_id, request)])
    return reservation


async def commit_reservation(uow: UnitOfWork, order_id: str) -> Reservation:
    return _one(await commit_many(uow, [order_id]))


async def release_reservation(uow: UnitOfWork, order_id: str) -> Reservation:
    return _one(await release_many(uow, [order_id]))


async def cancel_reservation(uow: UnitOfWork, order_id: str) -> Reservation:
    return _one(await cancel_many(uow, [order_id]))
