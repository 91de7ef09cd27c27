"""Use cases of the delivery service: take in confirmed orders, dispatch rounds (assign free
couriers, cancel orders that waited too long, finish interrupted cancellations), the courier's
pick up and deliver, cancellation with its compensation, and reads.

Handlers receive `DeliveryPorts` (a repository with units of work, the order's status, payment
and stock), never a connection, so the same code runs against PostgreSQL, Redis, Kafka and the
other services in the service and against fakes in a unit test.

An order's status moves inside the transaction that changes its delivery: if announcing fails,
the delivery change rolls back and is retried; moving is idempotent, so a failed commit after
a successful move is harmless on retry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID

from foodflow.contracts.delivery import CourierAssignment, CourierView, DeliveryView
from foodflow.contracts.inventory import ReservationState
from foodflow.contracts.orders import FailureReason, OrderSnapshot, OrderStatus
from foodflow.contracts.payment import PaymentRequest, PaymentResult
from foodflow.delivery_service.domain import (
    Courier,
    Delivery,
    DeliveryConflict,
    DeliveryNotFound,
    DeliveryState,
    Point,
    choose_courier,
    plan_route,
    waited_too_long,
)
from foodflow.platform.db.unit_of_work import Transaction
from foodflow.platform.errors import ServiceUnavailable
from foodflow.platform.http.client import RequestRefused

log = logging.getLogger(__name__)
DEFAULT_RESTAURANT = "central-kitchen"
RESUME_CANCELLING_AFTER_SECONDS = 5.0
# Deliveries looked at per round for the waiting limit and for stalled cancellations.
ROUND_BATCH = 50


class UnitOfWork(Transaction, Protocol):
    async def get(self, order_id: UUID) -> Delivery | None: ...
    async def next_waiting(self) -> tuple[Delivery, Point] | None: ...
    async def free_couriers(self) -> list[Courier]: ...
    async def save(self, delivery: Delivery) -> None: ...
    async def take_courier(self, courier_id: str, order_id: UUID) -> None: ...
    async def free_courier(self, courier_id: str, at: Point) -> None: ...
    async def free_courier_of(self, order_id: UUID) -> None: ...


class Deliveries(Protocol):
    """Reads and the intake outside a transaction, units of work for the rest."""

    def unit_of_work(self) -> UnitOfWork: ...
    async def restaurant_of(self, item_ids: Iterable[str]) -> str | None: ...
    async def add(self, delivery: Delivery) -> bool: ...
    async def exists(self, order_id: UUID) -> bool: ...
    async def oldest_waiting(self, limit: int) -> list[tuple[UUID, datetime]]: ...
    async def stalled_cancellations(
        self, older_than_seconds: float, limit: int
    ) -> list[tuple[UUID, str]]: ...
    async def view(self, order_id: UUID) -> DeliveryView | None: ...
    async def couriers(self) -> list[CourierView]: ...
    async def assignment(self, courier_id: str) -> CourierAssignment | None: ...


class OrderStatuses(Protocol):
    """The order's lifecycle: its current snapshot, and one idempotent step on (stored, then
    announced); a step the order cannot take is a `DeliveryConflict`."""

    async def snapshot(self, order_id: UUID) -> OrderSnapshot | None: ...
    async def move(
        self,
        order_id: UUID,
        target: OrderStatus,
        *,
        reason: FailureReason | None = None,
        detail: str | None = None,
    ) -> OrderSnapshot: ...


class Payments(Protocol):
    """Gives a cancelled order's money back (`foodflow.clients.payment.PaymentClient`)."""

    async def refund(self, request: PaymentRequest) -> PaymentResult: ...
    async def void(self, request: PaymentRequest) -> PaymentResult: ...


class Stock(Protocol):
    """Gives a cancelled order's stock back (`foodflow.clients.inventory.InventoryClient`)."""

    async def cancel(self, order_id: UUID) -> ReservationState | None: ...


@dataclass(frozen=True)
class DeliveryPorts:
    """Everything the use cases work with; the app builds the real ones, tests pass fakes."""

    deliveries: Deliveries
    statuses: OrderStatuses
    payment: Payments
    stock: Stock
    courier_wait_limit_seconds: float
    courier_speed_kmh: float


# --- intake ----------------------------------------------------------------------------------


async def take_in(ports: DeliveryPorts, order: OrderSnapshot) -> bool:
    """A confirmed order with an address waits for a courier; True when newly taken in."""
    address = order.delivery_address
    if address is None or order.status is not OrderStatus.CONFIRMED:
        return False
    restaurant = await ports.deliveries.restaurant_of(i.item_id for i in order.items)
    delivery = Delivery.waiting(
        order.order_id,
        order.user_id,
        restaurant or DEFAULT_RESTAURANT,
        address.address,
        Point(address.lat, address.lon),
    )
    taken = await ports.deliveries.add(delivery)
    if taken:
        log.info("Order %s waits for a courier", order.order_id)
    return taken


async def take_in_confirmed(ports: DeliveryPorts, order_ids: Iterable[UUID]) -> bool:
    """Take in the orders announced CONFIRMED, read from their current status; if any is new,
    run a dispatch round at once. True when any was taken in."""
    taken = False
    for order_id in order_ids:
        order = await ports.statuses.snapshot(order_id)
        if order is not None and await take_in(ports, order):
            taken = True
    if taken:
        await dispatch_round(ports)
    return taken


# --- the dispatch round ----------------------------------------------------------------------


async def dispatch_round(ports: DeliveryPorts) -> int:
    """Cancel orders that waited too long, finish interrupted cancellations, then assign free
    couriers to waiting orders, oldest first. Returns how many waiting orders it handled
    (assigned, or abandoned because the order moved on)."""
    await _expire_waiting(ports)
    await _resume_cancelling(ports)
    handled = 0
    while await _assign_next(ports):
        handled += 1
    return handled


async def _expire_waiting(ports: DeliveryPorts) -> None:
    now = datetime.now(UTC)
    limit = ports.courier_wait_limit_seconds
    for order_id, since in await ports.deliveries.oldest_waiting(ROUND_BATCH):
        if waited_too_long(since, now, limit):
            log.warning("Order %s found no courier within %.0fs", order_id, limit)
            try:
                await _cancel(ports, order_id, FailureReason.NO_COURIER)
            except DeliveryConflict as exc:
                log.info("Order %s not cancelled: %s", order_id, exc)
            except Exception:
                # One order that cannot be cancelled now must not stop the round for the rest.
                log.exception("Order %s: cancelling for no courier failed; next round", order_id)


async def _resume_cancelling(ports: DeliveryPorts) -> None:
    stalled = await ports.deliveries.stalled_cancellations(
        RESUME_CANCELLING_AFTER_SECONDS, ROUND_BATCH
    )
    for order_id, reason in stalled:
        try:
            await _compensate(ports, order_id, FailureReason(reason))
        except Exception:
            # Left CANCELLING for the next round; the couriers and orders waiting behind it
            # are assigned all the same.
            log.exception("Order %s: finishing its cancellation failed; next round", order_id)


async def _assign_next(ports: DeliveryPorts) -> bool:
    """Assign the nearest free courier to the delivery waiting longest. False when nothing
    waits or no courier is free."""
    async with ports.deliveries.unit_of_work() as uow:
        waiting = await uow.next_waiting()
        if waiting is None:
            return False
        delivery, pickup = waiting
        order_id = delivery.order_id
        order = await ports.statuses.snapshot(order_id)
        if order is None or order.status is not OrderStatus.CONFIRMED:
            # Moved on without us (or expired): abandon it, so it cannot block the queue.
            gone = order.status.value if order is not None else "EXPIRED"
            log.warning("Delivery of order %s dropped: the order is %s", order_id, gone)
            await uow.save(delivery.abandon(f"ORDER_{gone}"))
            await uow.commit()
            return True
        courier = choose_courier(pickup, await uow.free_couriers())
        if courier is None:
            return False
        route = plan_route(courier.position, pickup, delivery.dropoff, ports.courier_speed_kmh)
        await uow.take_courier(courier.courier_id, order_id)
        await uow.save(delivery.assign(courier.courier_id, route))
        await ports.statuses.move(
            order_id,
            OrderStatus.COURIER_ASSIGNED,
            detail=f"courier {courier.courier_id} ({courier.name}), ETA {route.eta_minutes} min",
        )
        await uow.commit()
        return True


# --- courier actions -------------------------------------------------------------------------


async def pick_up(ports: DeliveryPorts, order_id: UUID, courier_id: str | None) -> DeliveryView:
    """The courier has the food: ASSIGNED -> PICKED_UP (the order too)."""
    await _courier_step(ports, order_id, lambda d: d.pick_up(courier_id))
    return await get_delivery(ports, order_id)


async def deliver(ports: DeliveryPorts, order_id: UUID, courier_id: str | None) -> DeliveryView:
    """The customer has the food: PICKED_UP -> DELIVERED (the order too); the courier is free
    again where the delivery ended, and a dispatch round gives them the next order."""
    await _courier_step(ports, order_id, lambda d: d.deliver(courier_id))
    view = await get_delivery(ports, order_id)
    await dispatch_round(ports)
    return view


async def _courier_step(
    ports: DeliveryPorts, order_id: UUID, step: Callable[[Delivery], Delivery]
) -> None:
    async with ports.deliveries.unit_of_work() as uow:
        before = await uow.get(order_id)
        if before is None:
            raise DeliveryNotFound(f"no delivery for order {order_id}")
        after = step(before)
        if after.state is before.state:
            return
        await ports.statuses.move(order_id, OrderStatus(after.state.value))
        await uow.save(after)
        if after.state is DeliveryState.DELIVERED and after.courier_id is not None:
            await uow.free_courier(after.courier_id, after.dropoff)
        await uow.commit()


# --- cancellation ----------------------------------------------------------------------------


async def cancel_delivery(
    ports: DeliveryPorts, order_id: UUID, reason: FailureReason
) -> DeliveryView:
    """Before pickup: refund, stock back, courier freed, CANCELLED. Idempotent; a crash or an
    unreachable payment or inventory service midway leaves the delivery CANCELLING, which the
    dispatch rounds finish. A freed courier is given the next order at once."""
    if await _cancel(ports, order_id, reason):
        await dispatch_round(ports)
    return await get_delivery(ports, order_id)


async def _cancel(ports: DeliveryPorts, order_id: UUID, reason: FailureReason) -> bool:
    """Start and, if the other services answer, finish the cancellation. True when it was
    finished now (a courier may be free)."""
    if not await ports.deliveries.exists(order_id):
        # Confirmed a moment ago: the status event may not have arrived yet.
        order = await ports.statuses.snapshot(order_id)
        if order is not None:
            await take_in(ports, order)
    async with ports.deliveries.unit_of_work() as uow:
        before = await uow.get(order_id)
        if before is None:
            raise DeliveryNotFound(f"no delivery for order {order_id}")
        if before.state is DeliveryState.CANCELLED:
            return False
        after = before.start_cancel(reason.value)
        if after.state is not before.state:
            await uow.save(after)
            await uow.commit()
    return await _compensate(ports, order_id, reason)


async def _compensate(ports: DeliveryPorts, order_id: UUID, reason: FailureReason) -> bool:
    """Refund (or void), stock back, courier freed, order and delivery CANCELLED. False when
    the payment or inventory service did not answer: the next rounds try again."""
    try:
        await _refund_or_void(ports.payment, order_id)
        await ports.stock.cancel(order_id)
    except (ServiceUnavailable, RequestRefused) as exc:
        log.error("Order %s: compensation incomplete, retried later: %s", order_id, exc)
        return False
    async with ports.deliveries.unit_of_work() as uow:
        before = await uow.get(order_id)
        if before is None:
            raise DeliveryNotFound(f"no delivery for order {order_id}")
        after = before.finish_cancel()
        await uow.free_courier_of(order_id)
        await ports.statuses.move(
            order_id, OrderStatus.CANCELLED, reason=reason, detail="refunded, stock returned"
        )
        if after.state is not before.state:
            await uow.save(after)
        await uow.commit()
    return True


async def _refund_or_void(payment: Payments, order_id: UUID) -> None:
    try:
        await payment.refund(
            PaymentRequest(order_id=order_id, idempotency_key=f"{order_id}:refund")
        )
    except RequestRefused as exc:
        if exc.status not in (404, 409):  # not captured (or never paid): a void instead
            raise
        await payment.void(PaymentRequest(order_id=order_id, idempotency_key=f"{order_id}:void"))


# --- reads -----------------------------------------------------------------------------------


async def get_delivery(ports: DeliveryPorts, order_id: UUID) -> DeliveryView:
    """The delivery of an order: state, restaurant, courier, distance and ETA."""
    view = await ports.deliveries.view(order_id)
    if view is None:
        raise DeliveryNotFound(f"no delivery for order {order_id}")
    return view


async def list_couriers(ports: DeliveryPorts) -> list[CourierView]:
    """Every courier with position and availability, by id."""
    return await ports.deliveries.couriers()


async def courier_assignment(ports: DeliveryPorts, courier_id: str) -> CourierAssignment:
    """A courier, where they are and the delivery they carry now (None when free)."""
    found = await ports.deliveries.assignment(courier_id)
    if found is None:
        raise DeliveryNotFound(f"no courier {courier_id}")
    return found
