"""Delivery use cases over in-memory fakes: intake, following the kitchen (plan, delay, food
ready, rejection), dispatch rounds timed to the kitchen, courier actions and cancellation with
its compensation, without a database, Redis, Kafka or other services."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import TracebackType
from uuid import UUID

import pytest

from foodflow.contracts.delivery import CourierAssignment, CourierView, DeliveryView, GeoPoint
from foodflow.contracts.inventory import ReservationState
from foodflow.contracts.orders import (
    DeliveryAddress,
    FailureReason,
    KitchenPlan,
    OrderSnapshot,
    OrderStatus,
    PricedItem,
)
from foodflow.contracts.payment import PaymentRequest, PaymentResult
from foodflow.delivery_service import services
from foodflow.delivery_service.domain import (
    Courier,
    Delivery,
    DeliveryConflict,
    DeliveryNotFound,
    DeliveryState,
    FoodNotReady,
    Point,
    WrongCourier,
    dispatch_at,
    ride,
)
from foodflow.orders.lifecycle import IllegalTransition, advance
from foodflow.platform.errors import ServiceUnavailable
from foodflow.platform.http.client import RequestRefused

RESTAURANT = Point(52.5200, 13.4050)
DROPOFF = Point(52.5300, 13.4000)
SPEED = 20.0
TOLERANCE = timedelta(seconds=30)


def now() -> datetime:
    return datetime.now(UTC)


class FakeDeliveries:
    """Deliveries and couriers in dicts; a unit of work's changes are kept only when committed."""

    def __init__(self, couriers: Iterable[Courier]) -> None:
        self.deliveries: dict[UUID, Delivery] = {}
        self.couriers_by_id = {c.courier_id: c for c in couriers}
        self.carrying: dict[str, UUID] = {}
        self.waiting_since: dict[UUID, datetime] = {}
        self.updated_at: dict[UUID, datetime] = {}
        self.commits = 0

    def unit_of_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    async def add(self, delivery: Delivery) -> bool:
        if delivery.order_id in self.deliveries:
            return False
        self.deliveries[delivery.order_id] = delivery
        self.waiting_since[delivery.order_id] = self.updated_at[delivery.order_id] = now()
        return True

    async def exists(self, order_id: UUID) -> bool:
        return order_id in self.deliveries

    async def unanswered(self, older_than_seconds: float, limit: int) -> list[UUID]:
        since = now() - timedelta(seconds=older_than_seconds)
        return sorted(
            (
                order_id
                for order_id, d in self.deliveries.items()
                if d.state is DeliveryState.WAITING
                and d.kitchen is None
                and self.waiting_since[order_id] < since
            ),
            key=lambda order_id: self.waiting_since[order_id],
        )[:limit]

    async def waiting_for_courier(self, limit: int) -> list[Delivery]:
        planned = [
            d
            for d in self.deliveries.values()
            if d.state is DeliveryState.WAITING and d.kitchen is not None
        ]
        return sorted(planned, key=lambda d: d.kitchen.ready_by if d.kitchen else now())[:limit]

    async def free_couriers(self) -> list[Courier]:
        free = (c for c in self.couriers_by_id.values() if c.available)
        return sorted(free, key=lambda c: c.courier_id)

    async def stalled_cancellations(
        self, older_than_seconds: float, limit: int
    ) -> list[tuple[UUID, str]]:
        cutoff = now() - timedelta(seconds=older_than_seconds)
        return [
            (i, d.cancel_reason or "")
            for i, d in self.deliveries.items()
            if d.state is DeliveryState.CANCELLING and self.updated_at[i] < cutoff
        ][:limit]

    async def view(self, order_id: UUID) -> DeliveryView | None:
        d = self.deliveries.get(order_id)
        if d is None:
            return None
        courier = self.couriers_by_id.get(d.courier_id or "")
        return DeliveryView(
            order_id=d.order_id,
            user_id=d.user_id,
            state=d.state.value,
            restaurant_id=d.restaurant_id,
            restaurant_name=d.kitchen.name if d.kitchen else None,
            ready_by=d.kitchen.ready_by if d.kitchen else None,
            food_ready=d.food_ready,
            arrived_at=d.arrived_at,
            address=d.address,
            courier_id=d.courier_id,
            courier_name=courier.name if courier is not None else None,
            distance_km=Decimal(str(d.distance_km)) if d.distance_km is not None else None,
            eta_minutes=d.eta_minutes,
            cancel_reason=d.cancel_reason,
            waiting_since=self.waiting_since[order_id],
            updated_at=self.updated_at[order_id],
        )

    async def couriers(self) -> list[CourierView]:
        return [
            CourierView(
                courier_id=c.courier_id,
                name=c.name,
                lat=c.position.lat,
                lon=c.position.lon,
                available=c.available,
                current_order=self.carrying.get(c.courier_id),
            )
            for c in sorted(self.couriers_by_id.values(), key=lambda c: c.courier_id)
        ]

    async def assignment(self, courier_id: str) -> CourierAssignment | None:
        courier = self.couriers_by_id.get(courier_id)
        if courier is None:
            return None
        return CourierAssignment(
            courier_id=courier_id,
            name=courier.name,
            position=GeoPoint(lat=courier.position.lat, lon=courier.position.lon),
            available=courier.available,
        )


class FakeUnitOfWork:
    def __init__(self, repository: FakeDeliveries) -> None:
        self.repository = repository

    async def __aenter__(self) -> FakeUnitOfWork:
        self.deliveries = dict(self.repository.deliveries)
        self.couriers = dict(self.repository.couriers_by_id)
        self.carrying = dict(self.repository.carrying)
        self.saved: set[UUID] = set()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    async def commit(self) -> None:
        self.repository.deliveries = dict(self.deliveries)
        self.repository.couriers_by_id = dict(self.couriers)
        self.repository.carrying = dict(self.carrying)
        for order_id in self.saved:
            self.repository.updated_at[order_id] = now()
        self.repository.commits += 1

    async def get(self, order_id: UUID) -> Delivery | None:
        return self.deliveries.get(order_id)

    async def free_couriers(self) -> list[Courier]:
        return sorted(
            (c for c in self.couriers.values() if c.available), key=lambda c: c.courier_id
        )

    async def save(self, delivery: Delivery) -> None:
        self.deliveries[delivery.order_id] = delivery
        self.saved.add(delivery.order_id)

    async def take_courier(self, courier_id: str, order_id: UUID) -> None:
        self.couriers[courier_id] = replace(self.couriers[courier_id], available=False)
        self.carrying[courier_id] = order_id

    async def free_courier(self, courier_id: str, at: Point) -> None:
        self.couriers[courier_id] = replace(self.couriers[courier_id], available=True, position=at)
        self.carrying.pop(courier_id, None)

    async def free_courier_of(self, order_id: UUID) -> None:
        for courier_id, carried in list(self.carrying.items()):
            if carried == order_id:
                self.couriers[courier_id] = replace(self.couriers[courier_id], available=True)
                del self.carrying[courier_id]


class FakeStatuses:
    """Order snapshots in a dict, moved with the real lifecycle rules."""

    def __init__(self) -> None:
        self.orders: dict[UUID, OrderSnapshot] = {}
        self.moves: list[tuple[UUID, OrderStatus, FailureReason | None, str | None]] = []

    async def snapshot(self, order_id: UUID) -> OrderSnapshot | None:
        return self.orders.get(order_id)

    async def move(
        self,
        order_id: UUID,
        target: OrderStatus,
        *,
        reason: FailureReason | None = None,
        detail: str | None = None,
    ) -> OrderSnapshot:
        current = self.orders[order_id]
        if current.status is target:
            return current
        try:
            moved = advance(current, target, reason=reason, detail=detail)
        except IllegalTransition as exc:
            raise DeliveryConflict(str(exc)) from exc
        self.orders[order_id] = moved
        self.moves.append((order_id, target, reason, detail))
        return moved


class FakePayment:
    def __init__(self, refund_refused: int | None = None) -> None:
        self.refund_refused = refund_refused
        self.down = False
        self.refunded: list[UUID] = []
        self.voided: list[UUID] = []

    async def refund(self, request: PaymentRequest) -> PaymentResult:
        if self.down:
            raise ServiceUnavailable("payment /refund: HTTP 503")
        if self.refund_refused is not None:
            raise RequestRefused("payment", self.refund_refused, "not captured")
        self.refunded.append(request.order_id)
        return result(request, "REFUND")

    async def void(self, request: PaymentRequest) -> PaymentResult:
        self.voided.append(request.order_id)
        return result(request, "VOID")


def result(request: PaymentRequest, operation: str) -> PaymentResult:
    return PaymentResult(
        order_id=request.order_id,
        operation=operation,
        approved=True,
        state=f"{operation}ED",
        amount_cents=900,
    )


class FakeStock:
    def __init__(self) -> None:
        self.returned: list[UUID] = []

    async def cancel(self, order_id: UUID) -> ReservationState | None:
        self.returned.append(order_id)
        return None


def confirmed(user_id: str = "u-1") -> OrderSnapshot:
    at = now()
    return OrderSnapshot(
        order_id=uuid.uuid4(),
        user_id=user_id,
        status=OrderStatus.CONFIRMED,
        version=3,
        created_at=at,
        updated_at=at,
        delivery_address=DeliveryAddress(address="Torstr. 1", lat=DROPOFF.lat, lon=DROPOFF.lon),
        items=[PricedItem(item_id="ramen", quantity=1, unit_price=Decimal("9.00"))],
    )


class World:
    """The ports of one test, handles on each fake, and a clock the test moves."""

    def __init__(self, couriers: Iterable[Courier], wait_limit: float = 600.0) -> None:
        self.deliveries = FakeDeliveries(couriers)
        self.statuses = FakeStatuses()
        self.payment = FakePayment()
        self.stock = FakeStock()
        self.now = now()
        self.ports = services.DeliveryPorts(
            deliveries=self.deliveries,
            statuses=self.statuses,
            payment=self.payment,
            stock=self.stock,
            courier_wait_limit_seconds=wait_limit,
            courier_speed_kmh=SPEED,
            dispatch_tolerance_seconds=TOLERANCE.total_seconds(),
            clock=lambda: self.now,
        )

    async def order(self) -> OrderSnapshot:
        """A confirmed order, taken in (it waits for its kitchen)."""
        order = confirmed()
        self.statuses.orders[order.order_id] = order
        assert await services.take_in(self.ports, order)
        return order

    async def kitchen(
        self,
        order: OrderSnapshot,
        status: OrderStatus,
        ready_in: timedelta | None = None,
        reason: FailureReason | None = None,
    ) -> OrderSnapshot:
        """The restaurant moves the order (a new plan ready in `ready_in`, if given), and the
        delivery service reads its event."""
        plan = (
            KitchenPlan(
                restaurant_id="tokyo-kitchen",
                restaurant_name="Tokyo Kitchen",
                lat=RESTAURANT.lat,
                lon=RESTAURANT.lon,
                ready_by=self.now + ready_in,
            )
            if ready_in is not None
            else None
        )
        current = self.statuses.orders[order.order_id]
        moved = advance(current, status, reason=reason, kitchen=plan)
        self.statuses.orders[order.order_id] = moved
        await services.follow_orders(self.ports, [order.order_id])
        return moved

    async def accepted(self, ready_in: timedelta = timedelta(0)) -> OrderSnapshot:
        """A confirmed order a restaurant accepted, its food ready in `ready_in`."""
        order = await self.order()
        return await self.kitchen(order, OrderStatus.RESTAURANT_ACCEPTED, ready_in)

    async def ready(self, order: OrderSnapshot) -> OrderSnapshot:
        current = self.statuses.orders[order.order_id]
        if current.status is OrderStatus.RESTAURANT_ACCEPTED:
            await self.kitchen(order, OrderStatus.PREPARING)
        return await self.kitchen(order, OrderStatus.READY_FOR_PICKUP)

    def status(self, order: OrderSnapshot) -> OrderStatus:
        return self.statuses.orders[order.order_id].status

    def delivery(self, order: OrderSnapshot) -> Delivery:
        return self.deliveries.deliveries[order.order_id]

    def state(self, order: OrderSnapshot) -> DeliveryState:
        return self.delivery(order).state


NEAR = Courier("c-near", Point(52.5210, 13.4060), name="Anna")
FAR = Courier("c-far", Point(52.6000, 13.5000), name="Ben")


# --- intake and the kitchen ------------------------------------------------------------------


async def test_a_confirmed_order_is_taken_in_once_and_waits_for_its_kitchen() -> None:
    world = World([NEAR])
    order = await world.order()

    assert not await services.take_in(world.ports, order)  # a replayed CONFIRMED event
    delivery = world.delivery(order)
    assert (delivery.state, delivery.kitchen, delivery.dropoff) == (
        DeliveryState.WAITING,
        None,
        DROPOFF,
    )
    assert await services.dispatch_round(world.ports) == 0  # no restaurant yet: no courier
    assert world.state(order) is DeliveryState.WAITING
    unconfirmed = confirmed().model_copy(update={"status": OrderStatus.PROCESSING})
    assert not await services.take_in(world.ports, unconfirmed)


async def test_the_kitchen_plan_is_taken_and_a_courier_sent_for_food_ready_now() -> None:
    world = World([FAR, NEAR])
    order = await world.accepted(ready_in=timedelta(0))

    view = await services.get_delivery(world.ports, order.order_id)
    assert (view.restaurant_id, view.restaurant_name) == ("tokyo-kitchen", "Tokyo Kitchen")
    assert view.ready_by == world.now and not view.food_ready
    assert (view.state, view.courier_id, view.courier_name) == ("ASSIGNED", "c-near", "Anna")
    assert view.eta_minutes is not None and view.distance_km is not None
    assert world.status(order) is OrderStatus.COURIER_ASSIGNED
    (_, _, _, detail) = world.statuses.moves[-1]
    assert detail == f"courier c-near (Anna), ETA {view.eta_minutes} min"
    couriers = {c.courier_id: c for c in await services.list_couriers(world.ports)}
    assert not couriers["c-near"].available and couriers["c-near"].current_order == order.order_id
    assert couriers["c-far"].available


async def test_an_order_first_seen_at_a_kitchen_step_is_taken_in_with_its_plan() -> None:
    world = World([])
    order = confirmed()
    world.statuses.orders[order.order_id] = order  # its CONFIRMED event was never read
    world.statuses.orders[order.order_id] = advance(
        advance(
            order,
            OrderStatus.RESTAURANT_ACCEPTED,
            kitchen=KitchenPlan(
                restaurant_id="napoli-oven",
                restaurant_name="Napoli Oven",
                lat=52.53,
                lon=13.38,
                ready_by=world.now,
            ),
        ),
        OrderStatus.PREPARING,
    )
    world.statuses.orders[order.order_id] = advance(
        world.statuses.orders[order.order_id], OrderStatus.READY_FOR_PICKUP
    )

    assert await services.follow_orders(world.ports, [order.order_id, uuid.uuid4()])

    delivery = world.delivery(order)
    assert delivery.restaurant_id == "napoli-oven" and delivery.food_ready
    assert not await services.follow_orders(world.ports, [order.order_id])  # nothing new


# --- dispatch timed to the kitchen -----------------------------------------------------------


async def test_a_courier_is_sent_no_earlier_than_ready_by_less_the_ride_and_the_tolerance() -> None:
    world = World([NEAR])
    start = world.now
    order = await world.accepted(ready_in=timedelta(minutes=30))
    send_at = dispatch_at(
        start + timedelta(minutes=30), ride(NEAR.position, RESTAURANT, SPEED), TOLERANCE
    )
    assert world.state(order) is DeliveryState.WAITING

    world.now = send_at - timedelta(seconds=1)
    assert await services.dispatch_round(world.ports) == 0
    assert world.state(order) is DeliveryState.WAITING
    assert world.status(order) is OrderStatus.RESTAURANT_ACCEPTED

    world.now = send_at
    assert await services.dispatch_round(world.ports) == 1
    assert world.state(order) is DeliveryState.ASSIGNED
    assert world.status(order) is OrderStatus.COURIER_ASSIGNED
    assert world.delivery(order).courier_due_at == send_at + ride(NEAR.position, RESTAURANT, SPEED)


async def test_the_food_ready_first_gets_the_courier_first() -> None:
    world = World([NEAR])
    later = await world.accepted(ready_in=timedelta(minutes=1))
    assert world.state(later) is DeliveryState.WAITING  # not due yet
    sooner = await world.accepted(ready_in=timedelta(0))
    assert world.state(sooner) is DeliveryState.ASSIGNED  # its round ran at once

    world.now += timedelta(minutes=2)
    assert await services.dispatch_round(world.ports) == 0  # the only courier is busy
    assert world.state(later) is DeliveryState.WAITING


async def test_a_delay_moves_the_dispatch_of_a_waiting_delivery() -> None:
    world = World([NEAR])
    start = world.now
    order = await world.accepted(ready_in=timedelta(minutes=10))
    await world.kitchen(order, OrderStatus.PREPARING, ready_in=timedelta(minutes=40))

    world.now = start + timedelta(minutes=10)  # the first plan's ready-by: no longer due
    await services.dispatch_round(world.ports)
    assert world.state(order) is DeliveryState.WAITING
    assert world.delivery(order).kitchen.ready_by == start + timedelta(minutes=40)  # type: ignore[union-attr]

    world.now = start + timedelta(minutes=40)
    await services.dispatch_round(world.ports)
    assert world.state(order) is DeliveryState.ASSIGNED


async def test_a_delay_moves_the_eta_of_an_assigned_delivery() -> None:
    world = World([NEAR])
    order = await world.accepted(ready_in=timedelta(0))
    await world.kitchen(order, OrderStatus.PREPARING)
    first = await services.get_delivery(world.ports, order.order_id)
    assert first.state == "ASSIGNED" and first.eta_minutes is not None

    await world.kitchen(order, OrderStatus.PREPARING, ready_in=timedelta(minutes=25))

    moved = await services.get_delivery(world.ports, order.order_id)
    assert moved.ready_by == world.now + timedelta(minutes=25)
    assert moved.eta_minutes is not None and moved.eta_minutes > first.eta_minutes + 20
    assert moved.courier_id == "c-near"  # the same courier, who now waits for the food
    assert world.status(order) is OrderStatus.PREPARING  # the kitchen's step, not ours


async def test_an_assignment_that_died_after_the_orders_step_is_done_again() -> None:
    """The reviewer's finding on issue 17: the order's COURIER_ASSIGNED was stored and the
    process died before the delivery's own commit; every later round skipped the order (it
    cannot go to COURIER_ASSIGNED again), and no courier ever came."""
    world = World([])
    order = await world.accepted(ready_in=timedelta(0))
    assert world.state(order) is DeliveryState.WAITING  # no courier free yet
    # What the dead assignment left: the order's step stored, the delivery still waiting.
    stored = advance(world.statuses.orders[order.order_id], OrderStatus.COURIER_ASSIGNED)
    world.statuses.orders[order.order_id] = stored
    world.deliveries.couriers_by_id[NEAR.courier_id] = NEAR
    assert await services.dispatch_round(world.ports) == 1
    assert world.state(order) is DeliveryState.ASSIGNED
    assert world.delivery(order).courier_id == NEAR.courier_id
    assert world.statuses.orders[order.order_id].version == stored.version  # not moved twice


async def test_an_order_no_kitchen_ever_answered_is_refunded_by_the_backstop() -> None:
    """The reviewer's finding on issue 17: an order the restaurant service never made a
    ticket of (its CONFIRMED event unreadable there) waited, charged, forever."""
    world = World([NEAR])
    forgotten, accepted = await world.order(), await world.order()
    world.statuses.orders[accepted.order_id] = advance(
        world.statuses.orders[accepted.order_id],
        OrderStatus.RESTAURANT_ACCEPTED,
        kitchen=KitchenPlan(
            restaurant_id="tokyo-kitchen",
            restaurant_name="Tokyo Kitchen",
            lat=RESTAURANT.lat,
            lon=RESTAURANT.lon,
            ready_by=world.now + timedelta(hours=1),
        ),
    )  # its event not read here yet
    for order in (forgotten, accepted):
        world.deliveries.waiting_since[order.order_id] -= timedelta(hours=2)

    await services.dispatch_round(world.ports)
    assert world.status(forgotten) is OrderStatus.CANCELLED
    assert world.statuses.orders[forgotten.order_id].reason is FailureReason.RESTAURANT_TIMEOUT
    assert world.payment.refunded == [forgotten.order_id]
    # The accepted one is followed as its event would have been: it waits for its courier.
    assert world.status(accepted) is OrderStatus.RESTAURANT_ACCEPTED
    assert world.delivery(accepted).kitchen is not None
    await services.dispatch_round(world.ports)
    assert world.payment.refunded == [forgotten.order_id]  # once


async def test_without_a_free_courier_the_order_waits_and_nothing_changes() -> None:
    world = World([replace(NEAR, available=False)])
    order = await world.accepted()
    commits = world.deliveries.commits

    assert await services.dispatch_round(world.ports) == 0

    assert world.state(order) is DeliveryState.WAITING
    assert world.status(order) is OrderStatus.RESTAURANT_ACCEPTED
    assert world.deliveries.commits == commits


async def test_an_order_that_moved_on_is_abandoned_and_does_not_block_the_queue() -> None:
    world = World([NEAR])
    gone = await world.accepted(ready_in=timedelta(minutes=5))
    world.statuses.orders[gone.order_id] = advance(
        world.statuses.orders[gone.order_id], OrderStatus.CANCELLED
    )
    expired = await world.accepted(ready_in=timedelta(minutes=5))
    del world.statuses.orders[expired.order_id]
    waiting = await world.accepted(ready_in=timedelta(minutes=6))
    world.now += timedelta(minutes=6)

    assert await services.dispatch_round(world.ports) == 3

    assert world.delivery(gone).cancel_reason == "ORDER_CANCELLED"
    assert world.delivery(expired).cancel_reason == "ORDER_EXPIRED"
    assert world.state(gone) is world.state(expired) is DeliveryState.CANCELLED
    assert world.state(waiting) is DeliveryState.ASSIGNED


async def test_the_waiting_limit_counts_from_the_food_ready_not_from_the_confirmation() -> None:
    world = World([], wait_limit=60)
    stale = await world.accepted(ready_in=timedelta(minutes=-2))
    cooking = await world.accepted(ready_in=timedelta(seconds=30))
    world.deliveries.waiting_since[cooking.order_id] -= timedelta(hours=1)  # confirmed long ago
    unanswered = await world.order()  # no restaurant has answered: no food to wait

    await services.dispatch_round(world.ports)

    current = world.statuses.orders[stale.order_id]
    assert (current.status, current.reason) == (OrderStatus.CANCELLED, "NO_COURIER")
    assert world.payment.refunded == [stale.order_id]
    assert world.state(cooking) is world.state(unanswered) is DeliveryState.WAITING


# --- the restaurant rejects ------------------------------------------------------------------


async def test_a_rejection_refunds_and_returns_the_stock_exactly_once() -> None:
    world = World([NEAR])
    order = await world.order()

    await world.kitchen(order, OrderStatus.RESTAURANT_REJECTED, reason=FailureReason.KITCHEN_BUSY)
    assert not await services.follow_orders(world.ports, [order.order_id])  # a replayed event

    current = world.statuses.orders[order.order_id]
    assert (current.status, current.reason) == (OrderStatus.CANCELLED, "KITCHEN_BUSY")
    assert [s.status for s in current.history][-2:] == ["RESTAURANT_REJECTED", "CANCELLED"]
    assert world.payment.refunded == [order.order_id]
    assert world.stock.returned == [order.order_id]
    view = await services.get_delivery(world.ports, order.order_id)
    assert (view.state, view.cancel_reason) == ("CANCELLED", "KITCHEN_BUSY")
    assert world.deliveries.couriers_by_id["c-near"].available


async def test_a_rejection_whose_refund_fails_is_finished_by_a_later_round() -> None:
    world = World([])
    order = await world.order()
    world.payment.down = True

    await world.kitchen(
        order, OrderStatus.RESTAURANT_REJECTED, reason=FailureReason.RESTAURANT_TIMEOUT
    )

    assert world.state(order) is DeliveryState.CANCELLING
    assert world.status(order) is OrderStatus.RESTAURANT_REJECTED
    world.payment.down = False
    world.deliveries.updated_at[order.order_id] -= timedelta(minutes=1)
    await services.dispatch_round(world.ports)
    await services.follow_orders(world.ports, [order.order_id])  # the event read once more
    current = world.statuses.orders[order.order_id]
    assert (current.status, current.reason) == (OrderStatus.CANCELLED, "RESTAURANT_TIMEOUT")
    assert world.payment.refunded == [order.order_id]
    assert world.stock.returned == [order.order_id]


async def test_a_rejection_of_an_order_never_seen_confirmed_is_taken_in_and_cancelled() -> None:
    world = World([])
    order = confirmed()
    world.statuses.orders[order.order_id] = advance(
        order, OrderStatus.RESTAURANT_REJECTED, reason=FailureReason.RESTAURANT_CLOSED
    )

    await services.follow_orders(world.ports, [order.order_id])

    assert world.state(order) is DeliveryState.CANCELLED
    assert world.statuses.orders[order.order_id].reason == "RESTAURANT_CLOSED"


# --- courier actions -------------------------------------------------------------------------


async def test_arrive_records_when_once_and_only_for_the_assigned_courier() -> None:
    world = World([NEAR, FAR])
    order = await world.accepted(ready_in=timedelta(minutes=5))
    with pytest.raises(DeliveryConflict, match="it cannot be reported at the restaurant"):
        await services.arrive(world.ports, order.order_id, None)  # no courier sent yet
    world.now += timedelta(minutes=5)
    await services.dispatch_round(world.ports)
    arrived_at = world.now + timedelta(minutes=1)
    world.now = arrived_at

    with pytest.raises(WrongCourier, match="is not assigned to c-far"):
        await services.arrive(world.ports, order.order_id, "c-far")
    view = await services.arrive(world.ports, order.order_id, "c-near")
    world.now += timedelta(minutes=3)
    again = await services.arrive(world.ports, order.order_id, "c-near")

    assert view.arrived_at == again.arrived_at == arrived_at
    assert view.state == "ASSIGNED" and world.status(order) is OrderStatus.COURIER_ASSIGNED
    with pytest.raises(DeliveryNotFound):
        await services.arrive(world.ports, uuid.uuid4(), None)


async def test_pickup_before_the_food_is_ready_is_refused_and_changes_nothing() -> None:
    world = World([NEAR])
    order = await world.accepted()
    await services.arrive(world.ports, order.order_id, "c-near")

    with pytest.raises(FoodNotReady, match="the food is not ready yet"):
        await services.pick_up(world.ports, order.order_id, "c-near")
    assert world.state(order) is DeliveryState.ASSIGNED
    assert world.status(order) is OrderStatus.COURIER_ASSIGNED

    await world.ready(order)
    assert world.delivery(order).food_ready
    picked = await services.pick_up(world.ports, order.order_id, "c-near")
    assert picked.state == "PICKED_UP" and world.status(order) is OrderStatus.PICKED_UP


async def test_pickup_reads_the_food_ready_from_the_order_when_its_event_is_late() -> None:
    world = World([NEAR])
    order = await world.accepted()
    current = world.statuses.orders[order.order_id]  # the kitchen moved it; no event read yet
    current = advance(advance(current, OrderStatus.PREPARING), OrderStatus.READY_FOR_PICKUP)
    world.statuses.orders[order.order_id] = current

    picked = await services.pick_up(world.ports, order.order_id, "c-near")

    assert picked.state == "PICKED_UP" and picked.food_ready


async def test_pick_up_then_deliver_frees_the_courier_where_the_food_arrived() -> None:
    world = World([NEAR])
    order = await world.accepted()
    await world.ready(order)

    picked = await services.pick_up(world.ports, order.order_id, "c-near")
    assert picked.state == "PICKED_UP" and world.status(order) is OrderStatus.PICKED_UP
    again = await services.pick_up(world.ports, order.order_id, None)  # a retried step
    assert again.state == "PICKED_UP"
    delivered = await services.deliver(world.ports, order.order_id, "c-near")

    assert delivered.state == "DELIVERED" and world.status(order) is OrderStatus.DELIVERED
    courier = world.deliveries.couriers_by_id["c-near"]
    assert courier.available and courier.position == DROPOFF
    assert [target for _, target, _, _ in world.statuses.moves] == [
        OrderStatus.COURIER_ASSIGNED,
        OrderStatus.PICKED_UP,
        OrderStatus.DELIVERED,
    ]


async def test_a_freed_courier_takes_the_next_waiting_order_at_once() -> None:
    world = World([NEAR])
    first = await world.accepted()
    second = await world.accepted()
    assert world.state(second) is DeliveryState.WAITING
    await world.ready(first)

    await services.pick_up(world.ports, first.order_id, None)
    await services.deliver(world.ports, first.order_id, None)

    assert world.state(second) is DeliveryState.ASSIGNED


async def test_illegal_courier_steps_are_conflicts_and_change_nothing() -> None:
    world = World([])
    order = await world.accepted()
    await world.ready(order)

    with pytest.raises(DeliveryConflict, match="is WAITING; it cannot be PICKED_UP"):
        await services.pick_up(world.ports, order.order_id, None)
    world.deliveries.couriers_by_id["c-near"] = NEAR
    await services.dispatch_round(world.ports)
    with pytest.raises(DeliveryConflict, match="is ASSIGNED; it cannot be DELIVERED"):
        await services.deliver(world.ports, order.order_id, None)
    with pytest.raises(DeliveryNotFound):
        await services.pick_up(world.ports, uuid.uuid4(), None)

    assert world.state(order) is DeliveryState.ASSIGNED
    assert world.status(order) is OrderStatus.COURIER_ASSIGNED


async def test_only_the_assigned_courier_reports_a_step_and_a_refusal_changes_nothing() -> None:
    world = World([NEAR, FAR])
    order = await world.accepted(ready_in=timedelta(minutes=5))
    with pytest.raises(WrongCourier, match="is not assigned to c-near"):
        await services.pick_up(world.ports, order.order_id, "c-near")  # nobody's yet
    world.now += timedelta(minutes=5)
    await services.dispatch_round(world.ports)
    await world.ready(order)

    with pytest.raises(WrongCourier, match="is not assigned to c-far"):
        await services.pick_up(world.ports, order.order_id, "c-far")
    assert world.state(order) is DeliveryState.ASSIGNED
    await services.pick_up(world.ports, order.order_id, "c-near")
    with pytest.raises(WrongCourier, match="is not assigned to c-far"):
        await services.deliver(world.ports, order.order_id, "c-far")

    assert world.state(order) is DeliveryState.PICKED_UP
    assert world.status(order) is OrderStatus.PICKED_UP
    assert not world.deliveries.couriers_by_id["c-near"].available


# --- cancellation ----------------------------------------------------------------------------


async def test_cancel_refunds_returns_stock_frees_the_courier_and_cancels_the_order() -> None:
    world = World([NEAR])
    order = await world.accepted()

    view = await services.cancel_delivery(
        world.ports, order.order_id, FailureReason.CUSTOMER_CANCELLED
    )

    assert view.state == "CANCELLED" and view.cancel_reason == "CUSTOMER_CANCELLED"
    assert world.payment.refunded == [order.order_id]
    assert world.stock.returned == [order.order_id]
    assert world.deliveries.couriers_by_id["c-near"].available
    assert "c-near" not in world.deliveries.carrying
    current = world.statuses.orders[order.order_id]
    assert (current.status, current.reason) == (OrderStatus.CANCELLED, "CUSTOMER_CANCELLED")
    again = await services.cancel_delivery(world.ports, order.order_id, FailureReason.NO_COURIER)
    assert again.state == "CANCELLED" and world.payment.refunded == [order.order_id]


async def test_cancel_before_the_restaurant_answers_and_when_the_food_is_ready() -> None:
    world = World([])
    unanswered = await world.order()
    ready = await world.accepted()
    await world.ready(ready)

    for order in (unanswered, ready):
        view = await services.cancel_delivery(
            world.ports, order.order_id, FailureReason.CUSTOMER_CANCELLED
        )
        assert view.state == "CANCELLED" and world.status(order) is OrderStatus.CANCELLED


async def test_cancel_voids_a_payment_that_was_never_captured() -> None:
    world = World([NEAR])
    world.payment.refund_refused = 409
    order = await world.order()

    view = await services.cancel_delivery(
        world.ports, order.order_id, FailureReason.CUSTOMER_CANCELLED
    )

    assert view.state == "CANCELLED"
    assert world.payment.voided == [order.order_id] and world.payment.refunded == []


async def test_cancel_takes_in_an_order_whose_confirmation_has_not_arrived_yet() -> None:
    world = World([])
    order = confirmed()
    world.statuses.orders[order.order_id] = order

    view = await services.cancel_delivery(
        world.ports, order.order_id, FailureReason.CUSTOMER_CANCELLED
    )

    assert view.state == "CANCELLED" and world.status(order) is OrderStatus.CANCELLED


async def test_an_interrupted_compensation_stays_cancelling_until_a_round_finishes_it() -> None:
    world = World([NEAR])
    order = await world.accepted()
    world.payment.down = True

    view = await services.cancel_delivery(
        world.ports, order.order_id, FailureReason.CUSTOMER_CANCELLED
    )

    assert view.state == "CANCELLING" and world.status(order) is OrderStatus.COURIER_ASSIGNED
    assert not world.deliveries.couriers_by_id["c-near"].available
    world.payment.down = False
    world.deliveries.updated_at[order.order_id] -= timedelta(minutes=1)
    await services.dispatch_round(world.ports)
    assert world.state(order) is DeliveryState.CANCELLED
    assert world.status(order) is OrderStatus.CANCELLED
    assert world.deliveries.couriers_by_id["c-near"].available


async def test_no_cancel_after_pickup() -> None:
    world = World([NEAR])
    order = await world.accepted()
    await world.ready(order)
    await services.pick_up(world.ports, order.order_id, None)

    with pytest.raises(DeliveryConflict, match="is picked up; it can no longer be cancelled"):
        await services.cancel_delivery(
            world.ports, order.order_id, FailureReason.CUSTOMER_CANCELLED
        )

    assert world.state(order) is DeliveryState.PICKED_UP
    assert world.payment.refunded == [] and world.stock.returned == []


async def test_a_cancellation_that_cannot_finish_does_not_stop_the_round() -> None:
    # Seen live: one CANCELLING delivery whose order could not be read failed every round, so
    # new orders waited with couriers free.
    world = World([NEAR, FAR])
    stuck = await world.accepted()
    world.payment.down = True
    await services.cancel_delivery(world.ports, stuck.order_id, FailureReason.CUSTOMER_CANCELLED)
    world.payment.down = False
    del world.statuses.orders[stuck.order_id]  # its status cannot be moved (KeyError here)
    world.deliveries.updated_at[stuck.order_id] -= timedelta(minutes=1)

    waiting = await world.accepted()  # its intake runs a round

    assert world.state(waiting) is DeliveryState.ASSIGNED
    assert world.state(stuck) is DeliveryState.CANCELLING  # tried again next round


async def test_a_courier_is_read_with_what_they_carry_and_an_unknown_one_is_not_found() -> None:
    ports = World([Courier("c1", RESTAURANT, name="Anna")]).ports
    found = await services.courier_assignment(ports, "c1")
    assert (found.courier_id, found.name, found.delivery) == ("c1", "Anna", None)
    with pytest.raises(DeliveryNotFound, match="no courier c9"):
        await services.courier_assignment(ports, "c9")
