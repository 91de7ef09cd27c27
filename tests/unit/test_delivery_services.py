"""Delivery use cases over in-memory fakes: intake, dispatch rounds, courier actions and
cancellation with its compensation, without a database, Redis, Kafka or other services."""

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
    Point,
    WrongCourier,
)
from foodflow.orders.lifecycle import IllegalTransition, advance
from foodflow.platform.errors import ServiceUnavailable
from foodflow.platform.http.client import RequestRefused

RESTAURANT = Point(52.5200, 13.4050)
DROPOFF = Point(52.5300, 13.4000)


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

    async def restaurant_of(self, item_ids: Iterable[str]) -> str | None:
        return "tokyo-kitchen" if "ramen" in item_ids else None

    async def add(self, delivery: Delivery) -> bool:
        if delivery.order_id in self.deliveries:
            return False
        self.deliveries[delivery.order_id] = delivery
        self.waiting_since[delivery.order_id] = self.updated_at[delivery.order_id] = now()
        return True

    async def exists(self, order_id: UUID) -> bool:
        return order_id in self.deliveries

    async def oldest_waiting(self, limit: int) -> list[tuple[UUID, datetime]]:
        waiting = [i for i, d in self.deliveries.items() if d.state is DeliveryState.WAITING]
        waiting.sort(key=self.waiting_since.__getitem__)
        return [(i, self.waiting_since[i]) for i in waiting[:limit]]

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

    async def next_waiting(self) -> tuple[Delivery, Point] | None:
        waiting = [d for d in self.deliveries.values() if d.state is DeliveryState.WAITING]
        if not waiting:
            return None
        return min(waiting, key=lambda d: self.repository.waiting_since[d.order_id]), RESTAURANT

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


def now() -> datetime:
    return datetime.now(UTC)


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
    """The ports of one test, and handles on each fake."""

    def __init__(self, couriers: Iterable[Courier], wait_limit: float = 600.0) -> None:
        self.deliveries = FakeDeliveries(couriers)
        self.statuses = FakeStatuses()
        self.payment = FakePayment()
        self.stock = FakeStock()
        self.ports = services.DeliveryPorts(
            deliveries=self.deliveries,
            statuses=self.statuses,
            payment=self.payment,
            stock=self.stock,
            courier_wait_limit_seconds=wait_limit,
            courier_speed_kmh=20.0,
        )

    async def order(self) -> OrderSnapshot:
        """A confirmed order, taken in (it waits for a courier)."""
        order = confirmed()
        self.statuses.orders[order.order_id] = order
        assert await services.take_in(self.ports, order)
        return order

    def status(self, order: OrderSnapshot) -> OrderStatus:
        return self.statuses.orders[order.order_id].status

    def state(self, order: OrderSnapshot) -> DeliveryState:
        return self.deliveries.deliveries[order.order_id].state


NEAR = Courier("c-near", Point(52.5210, 13.4060), name="Anna")
FAR = Courier("c-far", Point(52.6000, 13.5000), name="Ben")


async def test_intake_takes_a_confirmed_order_once_from_its_kitchen() -> None:
    world = World([NEAR])
    order = await world.order()

    assert not await services.take_in(world.ports, order)  # a replayed CONFIRMED event
    delivery = world.deliveries.deliveries[order.order_id]
    assert (delivery.state, delivery.restaurant_id, delivery.dropoff) == (
        DeliveryState.WAITING,
        "tokyo-kitchen",
        DROPOFF,
    )
    unconfirmed = confirmed().model_copy(update={"status": OrderStatus.PROCESSING})
    assert not await services.take_in(world.ports, unconfirmed)


async def test_a_round_assigns_the_nearest_free_courier_and_moves_the_order() -> None:
    world = World([FAR, NEAR])
    order = await world.order()

    assert await services.dispatch_round(world.ports) == 1

    view = await services.get_delivery(world.ports, order.order_id)
    assert (view.state, view.courier_id, view.courier_name) == ("ASSIGNED", "c-near", "Anna")
    assert view.eta_minutes is not None and view.distance_km is not None
    assert world.status(order) is OrderStatus.COURIER_ASSIGNED
    (_, _, _, detail) = world.statuses.moves[-1]
    assert detail == f"courier c-near (Anna), ETA {view.eta_minutes} min"
    couriers = {c.courier_id: c for c in await services.list_couriers(world.ports)}
    assert not couriers["c-near"].available and couriers["c-near"].current_order == order.order_id
    assert couriers["c-far"].available


async def test_without_a_free_courier_the_order_waits_and_nothing_changes() -> None:
    world = World([replace(NEAR, available=False)])
    order = await world.order()
    commits = world.deliveries.commits

    assert await services.dispatch_round(world.ports) == 0

    assert world.state(order) is DeliveryState.WAITING
    assert world.status(order) is OrderStatus.CONFIRMED
    assert world.deliveries.commits == commits


async def test_take_in_confirmed_runs_a_round_for_new_orders() -> None:
    world = World([NEAR])
    order = confirmed()
    world.statuses.orders[order.order_id] = order

    assert await services.take_in_confirmed(world.ports, [order.order_id, uuid.uuid4()])
    assert world.state(order) is DeliveryState.ASSIGNED
    assert not await services.take_in_confirmed(world.ports, [order.order_id])


async def test_an_order_that_moved_on_is_abandoned_and_does_not_block_the_queue() -> None:
    world = World([NEAR])
    gone = await world.order()
    world.statuses.orders[gone.order_id] = advance(gone, OrderStatus.CANCELLED)
    expired = await world.order()
    del world.statuses.orders[expired.order_id]
    waiting = await world.order()

    assert await services.dispatch_round(world.ports) == 3

    assert world.deliveries.deliveries[gone.order_id].cancel_reason == "ORDER_CANCELLED"
    assert world.deliveries.deliveries[expired.order_id].cancel_reason == "ORDER_EXPIRED"
    assert world.state(gone) is world.state(expired) is DeliveryState.CANCELLED
    assert world.state(waiting) is DeliveryState.ASSIGNED


async def test_pick_up_then_deliver_frees_the_courier_where_the_food_arrived() -> None:
    world = World([NEAR])
    order = await world.order()
    await services.dispatch_round(world.ports)

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
    first = await world.order()
    await services.dispatch_round(world.ports)
    second = await world.order()
    await services.dispatch_round(world.ports)
    assert world.state(second) is DeliveryState.WAITING

    await services.pick_up(world.ports, first.order_id, None)
    await services.deliver(world.ports, first.order_id, None)

    assert world.state(second) is DeliveryState.ASSIGNED


async def test_illegal_courier_steps_are_conflicts_and_change_nothing() -> None:
    world = World([NEAR])
    order = await world.order()

    with pytest.raises(DeliveryConflict, match="is WAITING; it cannot be PICKED_UP"):
        await services.pick_up(world.ports, order.order_id, None)
    await services.dispatch_round(world.ports)
    with pytest.raises(DeliveryConflict, match="is ASSIGNED; it cannot be DELIVERED"):
        await services.deliver(world.ports, order.order_id, None)
    with pytest.raises(DeliveryNotFound):
        await services.pick_up(world.ports, uuid.uuid4(), None)

    assert world.state(order) is DeliveryState.ASSIGNED
    assert world.status(order) is OrderStatus.COURIER_ASSIGNED


async def test_only_the_assigned_courier_reports_a_step_and_a_refusal_changes_nothing() -> None:
    world = World([NEAR, FAR])
    order = await world.order()
    with pytest.raises(WrongCourier, match="is not assigned to c-near"):
        await services.pick_up(world.ports, order.order_id, "c-near")  # nobody's yet
    await services.dispatch_round(world.ports)

    with pytest.raises(WrongCourier, match="is not assigned to c-far"):
        await services.pick_up(world.ports, order.order_id, "c-far")
    assert world.state(order) is DeliveryState.ASSIGNED
    await services.pick_up(world.ports, order.order_id, "c-near")
    with pytest.raises(WrongCourier, match="is not assigned to c-far"):
        await services.deliver(world.ports, order.order_id, "c-far")

    assert world.state(order) is DeliveryState.PICKED_UP
    assert world.status(order) is OrderStatus.PICKED_UP
    assert not world.deliveries.couriers_by_id["c-near"].available


async def test_cancel_refunds_returns_stock_frees_the_courier_and_cancels_the_order() -> None:
    world = World([NEAR])
    order = await world.order()
    await services.dispatch_round(world.ports)

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
    order = await world.order()
    await services.dispatch_round(world.ports)
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
    order = await world.order()
    await services.dispatch_round(world.ports)
    await services.pick_up(world.ports, order.order_id, None)

    with pytest.raises(DeliveryConflict, match="is picked up; it can no longer be cancelled"):
        await services.cancel_delivery(
            world.ports, order.order_id, FailureReason.CUSTOMER_CANCELLED
        )

    assert world.state(order) is DeliveryState.PICKED_UP
    assert world.payment.refunded == [] and world.stock.returned == []


async def test_waiting_too_long_cancels_for_no_courier() -> None:
    world = World([], wait_limit=60)
    order = await world.order()
    world.deliveries.waiting_since[order.order_id] -= timedelta(minutes=2)
    fresh = await world.order()

    await services.dispatch_round(world.ports)

    current = world.statuses.orders[order.order_id]
    assert (current.status, current.reason) == (OrderStatus.CANCELLED, "NO_COURIER")
    assert world.payment.refunded == [order.order_id]
    assert world.state(fresh) is DeliveryState.WAITING


async def test_a_cancellation_that_cannot_finish_does_not_stop_the_round() -> None:
    # Seen live: one CANCELLING delivery whose order could not be read failed every round, so
    # new orders waited with couriers free.
    world = World([NEAR, FAR])
    stuck = await world.order()
    await services.dispatch_round(world.ports)
    world.payment.down = True
    await services.cancel_delivery(world.ports, stuck.order_id, FailureReason.CUSTOMER_CANCELLED)
    world.payment.down = False
    del world.statuses.orders[stuck.order_id]  # its status cannot be moved (KeyError here)
    world.deliveries.updated_at[stuck.order_id] -= timedelta(minutes=1)
    waiting = await world.order()

    assert await services.dispatch_round(world.ports) == 1

    assert world.state(waiting) is DeliveryState.ASSIGNED
    assert world.state(stuck) is DeliveryState.CANCELLING  # tried again next round


async def test_a_courier_is_read_with_what_they_carry_and_an_unknown_one_is_not_found() -> None:
    ports = World([Courier("c1", RESTAURANT, name="Anna")]).ports
    found = await services.courier_assignment(ports, "c1")
    assert (found.courier_id, found.name, found.delivery) == ("c1", "Anna", None)
    with pytest.raises(DeliveryNotFound, match="no courier c9"):
        await services.courier_assignment(ports, "c9")
