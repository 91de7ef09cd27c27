"""Use cases of the delivery service: take in confirmed orders and follow their kitchen
(the restaurant's plan, its delays, the food ready, a rejection), dispatch rounds (send free
couriers so that they reach the restaurant when the food is ready, cancel orders whose food
waited too long for one, finish interrupted cancellations), the courier's arrive, pick up and
deliver, cancellation with its compensation, and reads.

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
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Protocol
from uuid import UUID

from foodflow.contracts.delivery import CourierAssignment, CourierView, DeliveryView
from foodflow.contracts.inventory import ReservationState
from foodflow.contracts.orders import (
    ALLOWED_TRANSITIONS,
    FailureReason,
    OrderSnapshot,
    OrderStatus,
)
from foodflow.contracts.payment import PaymentRequest, PaymentResult
from foodflow.delivery_service.domain import (
    Courier,
    Delivery,
    DeliveryConflict,
    DeliveryError,
    DeliveryNotFound,
    DeliveryState,
    FoodNotReady,
    Kitchen,
    Point,
    choose_courier,
    dispatch_at,
    ride,
    waited_too_long,
)
from foodflow.platform.db.unit_of_work import Transaction
from foodflow.platform.errors import ServiceUnavailable
from foodflow.platform.http.client import RequestRefused

log = logging.getLogger(__name__)
RESUME_CANCELLING_AFTER_SECONDS = 5.0
# Deliveries looked at per round for dispatch and the waiting limit, and for stalled
# cancellations.
ROUND_BATCH = 50
# The order statuses this service follows from the restaurant's side: the handover
# (CONFIRMED), and the kitchen's steps before a courier is assigned. An order first seen at any
# of them is taken in (its CONFIRMED event may have come before this service was listening).
FOLLOWED = frozenset(
    {
        OrderStatus.CONFIRMED,
        OrderStatus.RESTAURANT_ACCEPTED,
        OrderStatus.RESTAURANT_REJECTED,
        OrderStatus.PREPARING,
        OrderStatus.READY_FOR_PICKUP,
    }
)
# A rejection names its reason; should one not, the kitchen could not take the order.
UNNAMED_REJECTION = FailureReason.KITCHEN_BUSY


def utcnow() -> datetime:
    return datetime.now(UTC)


class UnitOfWork(Transaction, Protocol):
    async def get(self, order_id: UUID) -> Delivery | None: ...
    async def free_couriers(self) -> list[Courier]: ...
    async def save(self, delivery: Delivery) -> None: ...
    async def take_courier(self, courier_id: str, order_id: UUID) -> None: ...
    async def free_courier(self, courier_id: str, at: Point) -> None: ...
    async def free_courier_of(self, order_id: UUID) -> None: ...


class Deliveries(Protocol):
    """Reads and the intake outside a transaction, units of work for the rest."""

    def unit_of_work(self) -> UnitOfWork: ...
    async def add(self, delivery: Delivery) -> bool: ...
    async def exists(self, order_id: UUID) -> bool: ...
    async def waiting_for_courier(self, limit: int) -> list[Delivery]: ...
    async def unanswered(self, older_than_seconds: float, limit: int) -> list[UUID]: ...
    async def free_couriers(self) -> list[Courier]: ...
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
    dispatch_tolerance_seconds: float
    clock: Callable[[], datetime] = utcnow
    # How long a confirmed order may wait for any kitchen's answer before this service, as a
    # backstop, cancels and refunds it (RESTAURANT_TIMEOUT): past the restaurant service's own
    # timeout, for an order that service never saw (an event it could not read).
    kitchen_answer_limit_seconds: float = 3600.0


# --- intake and the kitchen ------------------------------------------------------------------


def kitchen_of(order: OrderSnapshot) -> Kitchen | None:
    """The restaurant's plan the order carries (from RESTAURANT_ACCEPTED on), if any."""
    plan = order.kitchen
    if plan is None:
        return None
    return Kitchen(
        plan.restaurant_id, plan.restaurant_name, Point(plan.lat, plan.lon), plan.ready_by
    )


def food_ready(order: OrderSnapshot) -> bool:
    """Whether the kitchen has reported the food ready (whatever happened to the order since)."""
    return order.status is OrderStatus.READY_FOR_PICKUP or any(
        change.status is OrderStatus.READY_FOR_PICKUP for change in order.history
    )


async def take_in(ports: DeliveryPorts, order: OrderSnapshot) -> bool:
    """A confirmed order with an address waits for its restaurant's plan and then a courier
    (one seen first at a later kitchen step is taken in with the plan it carries); True when
    newly taken in."""
    address = order.delivery_address
    if address is None or order.status not in FOLLOWED:
        return False
    delivery = Delivery.waiting(
        order.order_id,
        order.user_id,
        address.address,
        Point(address.lat, address.lon),
        kitchen_of(order),
    )
    if food_ready(order):
        delivery = delivery.food_is_ready()
    taken = await ports.deliveries.add(delivery)
    if taken:
        log.info("Order %s waits for its kitchen and a courier", order.order_id)
    return taken


async def follow_orders(ports: DeliveryPorts, order_ids: Iterable[UUID]) -> bool:
    """React to the orders announced at a followed status, each read from its current
    snapshot (so a replayed or late event changes nothing): take it in, take the kitchen's plan
    and whether the food is ready, cancel it (refund, stock back) when the restaurant rejected
    it. If anything changed, run a dispatch round at once. True when anything changed."""
    changed = False
    for order_id in dict.fromkeys(order_ids):
        order = await ports.statuses.snapshot(order_id)
        if order is None or order.delivery_address is None:
            continue
        try:
            changed |= await _follow(ports, order)
        except DeliveryError as exc:
            log.info("Order %s: %s", order_id, exc)
    if changed:
        await dispatch_round(ports)
    return changed


async def _follow(ports: DeliveryPorts, order: OrderSnapshot) -> bool:
    if order.status is OrderStatus.RESTAURANT_REJECTED:
        reason = order.reason or UNNAMED_REJECTION
        log.warning("Order %s rejected by the restaurant (%s): cancelling", order.order_id, reason)
        return await _cancel(ports, order.order_id, reason)
    if await take_in(ports, order):
        return True
    kitchen = kitchen_of(order)
    async with ports.deliveries.unit_of_work() as uow:
        before = await uow.get(order.order_id)
        if before is None:
            return False
        after = before.plan(kitchen, ports.courier_speed_kmh) if kitchen is not None else before
        if food_ready(order):
            after = after.food_is_ready()
        if after is before:
            return False
        await uow.save(after)
        await uow.commit()
    log.info(
        "Order %s kitchen: %s ready by %s%s",
        order.order_id,
        after.restaurant_id,
        after.kitchen.ready_by.isoformat() if after.kitchen is not None else "?",
        ", food ready" if after.food_ready else "",
    )
    return True


# --- the dispatch round ----------------------------------------------------------------------


class _Dispatch(Enum):
    ASSIGNED = "assigned"
    ABANDONED = "abandoned"
    NOT_NOW = "not now"  # not due yet, or the order cannot take a courier (yet)
    NO_COURIER = "no courier"


async def dispatch_round(ports: DeliveryPorts) -> int:
    """Cancel orders whose food waited too long for a courier, finish interrupted
    cancellations, then send free couriers to the waiting orders that are due, earliest ready
    first. Returns how many waiting orders it handled (assigned, or abandoned because the order
    moved on)."""
    await _expire_unanswered(ports)
    waiting = await ports.deliveries.waiting_for_courier(ROUND_BATCH)
    waiting = await _expire_waiting(ports, waiting)
    await _resume_cancelling(ports)
    return await _assign_due(ports, waiting)


async def _expire_waiting(ports: DeliveryPorts, waiting: list[Delivery]) -> list[Delivery]:
    """Cancel, for no courier, the deliveries whose food has been ready (by the kitchen's
    word) for longer than the limit; the others are returned."""
    now = ports.clock()
    limit = ports.courier_wait_limit_seconds
    kept = []
    for delivery in waiting:
        order_id = delivery.order_id
        if delivery.kitchen is None or not waited_too_long(delivery.kitchen.ready_by, now, limit):
            kept.append(delivery)
            continue
        log.warning("Order %s found no courier within %.0fs of its food ready", order_id, limit)
        try:
            await _cancel(ports, order_id, FailureReason.NO_COURIER)
        except DeliveryConflict as exc:
            log.info("Order %s not cancelled: %s", order_id, exc)
        except Exception:
            # One order that cannot be cancelled now must not stop the round for the rest.
            log.exception("Order %s: cancelling for no courier failed; next round", order_id)
    return kept


async def _expire_unanswered(ports: DeliveryPorts) -> None:
    """The backstop for an order no kitchen answered: waiting with no kitchen plan for longer
    than `kitchen_answer_limit_seconds`. Still CONFIRMED (the restaurant service never made it
    a ticket): cancelled and refunded, RESTAURANT_TIMEOUT. At a kitchen step or rejected (an
    event this service missed): followed now, as its event would have been."""
    limit = ports.kitchen_answer_limit_seconds
    for order_id in await ports.deliveries.unanswered(limit, ROUND_BATCH):
        order = await ports.statuses.snapshot(order_id)
        if order is None:
            continue
        try:
            if order.status is OrderStatus.CONFIRMED:
                log.warning("Order %s: no kitchen answered within %.0fs", order_id, limit)
                await _cancel(ports, order_id, FailureReason.RESTAURANT_TIMEOUT)
            else:
                await _follow(ports, order)
        except DeliveryError as exc:
            log.info("Order %s not cancelled: %s", order_id, exc)
        except Exception:
            # One order that cannot be handled now must not stop the round for the rest.
            log.exception("Order %s: the unanswered order's backstop failed; next round", order_id)


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


def _due(ports: DeliveryPorts, delivery: Delivery, courier: Courier, now: datetime) -> bool:
    """Whether `courier`, sent now, would reach the restaurant no earlier than the tolerance
    before the food is ready."""
    if delivery.kitchen is None:
        return False
    to_restaurant = ride(courier.position, delivery.kitchen.pickup, ports.courier_speed_kmh)
    tolerance = timedelta(seconds=ports.dispatch_tolerance_seconds)
    return now >= dispatch_at(delivery.kitchen.ready_by, to_restaurant, tolerance)


async def _assign_due(ports: DeliveryPorts, waiting: list[Delivery]) -> int:
    """Assign the waiting deliveries (earliest ready first) whose nearest free courier is due
    to set off. A first look on a snapshot of the free couriers, without locks; each assignment
    then decides again in its own transaction."""
    free = await ports.deliveries.free_couriers()
    handled = 0
    for delivery in waiting:
        if delivery.kitchen is None:
            continue
        courier = choose_courier(delivery.kitchen.pickup, free)
        if courier is None:
            break
        if not _due(ports, delivery, courier, ports.clock()):
            continue
        outcome, taken = await _assign(ports, delivery.order_id)
        if outcome is _Dispatch.NO_COURIER:
            break
        if outcome in (_Dispatch.ASSIGNED, _Dispatch.ABANDONED):
            handled += 1
        free = [c for c in free if c.courier_id != taken]
    return handled


async def _assign(ports: DeliveryPorts, order_id: UUID) -> tuple[_Dispatch, str | None]:
    """Send the nearest free courier to `order_id` if it is still waiting and due; with the
    courier taken, if any."""
    async with ports.deliveries.unit_of_work() as uow:
        delivery = await uow.get(order_id)
        if delivery is None or delivery.state is not DeliveryState.WAITING:
            return _Dispatch.NOT_NOW, None
        kitchen = delivery.kitchen
        if kitchen is None:
            return _Dispatch.NOT_NOW, None
        order = await ports.statuses.snapshot(order_id)
        if order is None or order.status.is_terminal:
            # Moved on without us (or expired): abandon it, so it cannot block the queue.
            gone = order.status.value if order is not None else "EXPIRED"
            log.warning("Delivery of order %s dropped: the order is %s", order_id, gone)
            await uow.save(delivery.abandon(f"ORDER_{gone}"))
            await uow.commit()
            return _Dispatch.ABANDONED, None
        # An order already COURIER_ASSIGNED with its delivery still WAITING is an assignment
        # that stored the order's step and died before its own commit: do it again (the
        # order's step is found done). Any other status a courier cannot follow waits.
        if (
            order.status is not OrderStatus.COURIER_ASSIGNED
            and OrderStatus.COURIER_ASSIGNED not in ALLOWED_TRANSITIONS[order.status]
        ):
            # Not at a kitchen step (a rejection being cancelled; an order confirmed before
            # there were kitchens): no courier for it; the waiting limit ends it if need be.
            return _Dispatch.NOT_NOW, None
        courier = choose_courier(kitchen.pickup, await uow.free_couriers())
        if courier is None:
            return _Dispatch.NO_COURIER, None
        now = ports.clock()
        if not _due(ports, delivery, courier, now):
            return _Dispatch.NOT_NOW, None
        assigned = delivery.assign(courier, now, ports.courier_speed_kmh)
        await uow.take_courier(courier.courier_id, order_id)
        await uow.save(assigned)
        await ports.statuses.move(
            order_id,
            OrderStatus.COURIER_ASSIGNED,
            detail=f"courier {courier.courier_id} ({courier.name}), ETA {assigned.eta_minutes} min",
        )
        await uow.commit()
        return _Dispatch.ASSIGNED, courier.courier_id


# --- courier actions -------------------------------------------------------------------------


async def arrive(ports: DeliveryPorts, order_id: UUID, courier_id: str | None) -> DeliveryView:
    """The courier is at the restaurant: records when (once), and the ETA counts from it."""
    async with ports.deliveries.unit_of_work() as uow:
        before = await uow.get(order_id)
        if before is None:
            raise DeliveryNotFound(f"no delivery for order {order_id}")
        after = before.arrive(courier_id, ports.clock(), ports.courier_speed_kmh)
        if after is not before:
            await uow.save(after)
            await uow.commit()
            log.info("Order %s: courier %s at the restaurant", order_id, after.courier_id)
    return await get_delivery(ports, order_id)


async def pick_up(ports: DeliveryPorts, order_id: UUID, courier_id: str | None) -> DeliveryView:
    """The courier has the food: ASSIGNED -> PICKED_UP (the order too); 409 while the kitchen
    has not reported the food ready."""
    try:
        await _courier_step(ports, order_id, lambda d: d.pick_up(courier_id))
    except FoodNotReady:
        # The kitchen may have said so before its event reached us: the order's timeline knows.
        if not await _catch_up_food_ready(ports, order_id):
            raise
        await _courier_step(ports, order_id, lambda d: d.pick_up(courier_id))
    return await get_delivery(ports, order_id)


async def deliver(ports: DeliveryPorts, order_id: UUID, courier_id: str | None) -> DeliveryView:
    """The customer has the food: PICKED_UP -> DELIVERED (the order too); the courier is free
    again where the delivery ended, and a dispatch round gives them the next order."""
    await _courier_step(ports, order_id, lambda d: d.deliver(courier_id))
    view = await get_delivery(ports, order_id)
    await dispatch_round(ports)
    return view


async def _catch_up_food_ready(ports: DeliveryPorts, order_id: UUID) -> bool:
    """Take the food ready from the order's timeline; True when that changed the delivery."""
    order = await ports.statuses.snapshot(order_id)
    if order is None or not food_ready(order):
        return False
    async with ports.deliveries.unit_of_work() as uow:
        before = await uow.get(order_id)
        if before is None:
            return False
        after = before.food_is_ready()
        if after is before:
            return False
        await uow.save(after)
        await uow.commit()
    return True


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
    return await _compensate(ports, order_id, FailureReason(after.cancel_reason or reason))


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
    """The delivery of an order: state, restaurant and ready-by time, courier, distance, ETA."""
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
