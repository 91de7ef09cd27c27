"""Restaurant use cases over in-memory fakes: intake with its refusals, the staff's steps moving
the ticket and the order (with the real mover over a fake order state store), cancellation
and pickup closing tickets, the timeout sweep, menus, opening and reads, without a database,
Kafka or the inventory service."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from types import TracebackType
from uuid import UUID

import pytest

from foodflow.contracts.orders import (
    DeliveryAddress,
    FailureReason,
    OrderFinalEvent,
    OrderSnapshot,
    OrderStatus,
    OrderStatusUpdate,
    PricedItem,
    StatusChange,
)
from foodflow.contracts.restaurant import OpeningChange, TicketState
from foodflow.orders.lifecycle import advance
from foodflow.orders.status_store import SaveOutcome
from foodflow.platform.errors import ServiceUnavailable
from foodflow.platform.http.client import RequestRefused
from foodflow.restaurant_service import services
from foodflow.restaurant_service.domain import (
    ItemNotOnMenu,
    Kitchen,
    MenuLine,
    RestaurantNotFound,
    Ticket,
    TicketConflict,
    TicketNotFound,
)
from foodflow.restaurant_service.order_status import OrderStatusMover

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
TIMEOUT = 180.0


def kitchen(restaurant_id: str, **over: object) -> Kitchen:
    base = Kitchen(
        restaurant_id=restaurant_id,
        name=restaurant_id.replace("-", " ").title(),
        lat=52.52,
        lon=13.40,
        timezone="Europe/Berlin",
        opens_at=time(0),
        closes_at=time(0),
        accepting=True,
        capacity=20,
    )
    return replace(base, **over)  # type: ignore[arg-type]


class FakeKitchens:
    """Kitchens, menu and tickets in dicts; a unit of work's changes are kept only when
    committed."""

    def __init__(self) -> None:
        self.kitchens_by_id = {
            k.restaurant_id: k for k in (kitchen("tokyo-kitchen"), kitchen("central-kitchen"))
        }
        self.menu = {
            "ramen": MenuLine("ramen", "tokyo-kitchen", 12),
            "gyoza": MenuLine("gyoza", "tokyo-kitchen", 8),
            "caesar-salad": MenuLine("caesar-salad", "central-kitchen", 6),
        }
        self.tickets_by_id: dict[UUID, Ticket] = {}
        self.received: dict[UUID, datetime] = {}
        self.commits = 0

    def unit_of_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    async def kitchens(self) -> list[Kitchen]:
        return sorted(self.kitchens_by_id.values(), key=lambda k: k.restaurant_id)

    async def kitchen(self, restaurant_id: str) -> Kitchen | None:
        return self.kitchens_by_id.get(restaurant_id)

    async def menu_lines(self, item_ids: Iterable[str]) -> dict[str, MenuLine]:
        return {i: self.menu[i] for i in item_ids if i in self.menu}

    async def menus(self, restaurant_ids: Collection[str]) -> list[MenuLine]:
        return sorted(
            (m for m in self.menu.values() if m.restaurant_id in restaurant_ids),
            key=lambda m: m.item_id,
        )

    async def active_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for t in self.tickets_by_id.values():
            if t.state in (TicketState.ACCEPTED, TicketState.PREPARING):
                counts[t.restaurant_id] = counts.get(t.restaurant_id, 0) + 1
        return counts

    async def ticket(self, order_id: UUID) -> Ticket | None:
        return self.tickets_by_id.get(order_id)

    async def tickets(
        self, restaurant_id: str, states: Collection[TicketState], limit: int
    ) -> list[Ticket]:
        found = [
            t
            for t in self.tickets_by_id.values()
            if t.restaurant_id == restaurant_id and t.state in states
        ]
        return sorted(found, key=lambda t: self.received[t.order_id])[-limit:]

    async def stale_pending(self, older_than_seconds: float, limit: int) -> list[UUID]:
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        return [
            order_id
            for order_id, t in self.tickets_by_id.items()
            if t.state is TicketState.PENDING and self.received[order_id] < cutoff
        ][:limit]


class FakeUnitOfWork:
    def __init__(self, repository: FakeKitchens) -> None:
        self.repository = repository

    async def __aenter__(self) -> FakeUnitOfWork:
        self.tickets = dict(self.repository.tickets_by_id)
        self.kitchens = dict(self.repository.kitchens_by_id)
        self.menu = dict(self.repository.menu)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    async def commit(self) -> None:
        for order_id in self.tickets.keys() - self.repository.tickets_by_id.keys():
            self.repository.received[order_id] = datetime.now(UTC)
        self.repository.tickets_by_id = dict(self.tickets)
        self.repository.kitchens_by_id = dict(self.kitchens)
        self.repository.menu = dict(self.menu)
        self.repository.commits += 1

    async def kitchen(self, restaurant_id: str) -> Kitchen | None:
        return self.kitchens.get(restaurant_id)

    async def active_tickets(self, restaurant_id: str) -> int:
        return sum(
            t.restaurant_id == restaurant_id
            and t.state in (TicketState.ACCEPTED, TicketState.PREPARING)
            for t in self.tickets.values()
        )

    async def menu_lines(self, item_ids: Iterable[str]) -> dict[str, MenuLine]:
        return {i: self.menu[i] for i in item_ids if i in self.menu}

    async def ticket(self, order_id: UUID) -> Ticket | None:
        return self.tickets.get(order_id)

    async def add(self, ticket: Ticket) -> bool:
        if ticket.order_id in self.tickets:
            return False
        self.tickets[ticket.order_id] = ticket
        return True

    async def save(self, ticket: Ticket) -> None:
        self.tickets[ticket.order_id] = ticket

    async def set_available(
        self, restaurant_id: str, item_id: str, available: bool
    ) -> MenuLine | None:
        line = self.menu.get(item_id)
        if line is None or line.restaurant_id != restaurant_id:
            return None
        self.menu[item_id] = replace(line, available=available)
        return self.menu[item_id]

    async def save_kitchen(self, kitchen: Kitchen) -> None:
        self.kitchens[kitchen.restaurant_id] = kitchen


class FakeStore:
    """The order state store: snapshots in a dict, behind the version guard."""

    def __init__(self) -> None:
        self.snapshots: dict[UUID, OrderSnapshot] = {}

    async def load_snapshot(self, order_id: UUID) -> OrderSnapshot | None:
        return self.snapshots.get(order_id)

    async def save(self, update: OrderSnapshot) -> SaveOutcome:
        current = self.snapshots.get(update.order_id)
        if current is not None and current.version >= update.version:
            return SaveOutcome.CONFLICT
        self.snapshots[update.order_id] = update
        return SaveOutcome.WRITTEN


class Announced:
    def __init__(self) -> None:
        self.updates: list[OrderStatusUpdate] = []
        self.failing = 0

    async def __call__(self, update: OrderStatusUpdate, final: OrderFinalEvent | None) -> None:
        if self.failing:
            self.failing -= 1
            raise ServiceUnavailable("Kafka is away")
        self.updates.append(update)

    def statuses(self) -> list[OrderStatus]:
        return [u.status for u in self.updates]


class FakeCatalogue:
    def __init__(self, refuse: int | None = None) -> None:
        self.refuse = refuse
        self.down = False
        self.calls: list[tuple[str, bool]] = []

    async def set_availability(self, item_id: str, available: bool) -> None:
        if self.down:
            raise ServiceUnavailable("inventory: HTTP 503")
        if self.refuse is not None:
            raise RequestRefused("inventory", self.refuse, "no such item")
        self.calls.append((item_id, available))


class World:
    def __init__(self) -> None:
        self.kitchens = FakeKitchens()
        self.store = FakeStore()
        self.announced = Announced()
        self.catalogue = FakeCatalogue()
        self.now = NOW
        self.ports = services.RestaurantPorts(
            kitchens=self.kitchens,
            statuses=OrderStatusMover(self.store, self.announced),
            catalogue=self.catalogue,
            accept_timeout_seconds=TIMEOUT,
            clock=lambda: self.now,
        )

    def confirmed(self, *items: str, address: bool = True) -> OrderSnapshot:
        statuses = (OrderStatus.RECEIVED, OrderStatus.PROCESSING, OrderStatus.CONFIRMED)
        order = OrderSnapshot(
            order_id=uuid.uuid4(),
            user_id="u-1",
            status=OrderStatus.CONFIRMED,
            version=3,
            created_at=NOW,
            delivery_address=(
                DeliveryAddress(address="Torstr. 1", lat=52.53, lon=13.4) if address else None
            ),
            items=[PricedItem(item_id=i, quantity=1, unit_price=Decimal("5.00")) for i in items],
            history=[StatusChange(status=s, version=v, at=NOW) for v, s in enumerate(statuses, 1)],
        )
        self.store.snapshots[order.order_id] = order
        return order

    def order(self, order_id: UUID) -> OrderSnapshot:
        return self.store.snapshots[order_id]

    async def taken_in(self, *items: str) -> OrderSnapshot:
        order = self.confirmed(*items)
        assert await services.take_in(self.ports, order)
        return order


@pytest.fixture
def world() -> World:
    return World()


# --- intake ----------------------------------------------------------------------------------


async def test_a_confirmed_order_becomes_a_pending_ticket_at_its_restaurant(world: World) -> None:
    order = await world.taken_in("ramen", "test-x")
    ticket = await services.get_ticket(world.ports, "tokyo-kitchen", order.order_id)
    assert ticket.state is TicketState.PENDING
    assert [(li.item_id, li.quantity) for li in ticket.lines] == [("ramen", 1), ("test-x", 1)]
    assert ticket.suggested_ready_in_minutes == 12
    assert world.order(order.order_id).status is OrderStatus.CONFIRMED  # nothing announced
    assert not await services.take_in(world.ports, order)  # a repeated event: nothing new


async def test_orders_without_an_address_or_past_confirmation_are_not_taken_in(
    world: World,
) -> None:
    assert not await services.take_in(world.ports, world.confirmed("ramen", address=False))
    cancelled = advance(world.confirmed("ramen"), OrderStatus.CANCELLED)
    assert not await services.take_in(world.ports, cancelled)
    assert not world.kitchens.tickets_by_id


async def test_items_on_no_menu_go_to_the_central_kitchen(world: World) -> None:
    order = await world.taken_in("test-x")
    assert world.kitchens.tickets_by_id[order.order_id].restaurant_id == "central-kitchen"


@pytest.mark.parametrize(
    ("tokyo", "gyoza_available", "reason"),
    [
        ({"accepting": False}, True, FailureReason.RESTAURANT_CLOSED),
        ({"opens_at": time(18), "closes_at": time(23)}, True, FailureReason.RESTAURANT_CLOSED),
        ({}, False, FailureReason.ITEM_UNAVAILABLE),
        ({"capacity": 1}, True, FailureReason.KITCHEN_BUSY),
    ],
    ids=["paused", "outside-hours", "item-unavailable", "busy"],
)
async def test_an_order_the_kitchen_cannot_take_is_rejected_at_once(
    world: World, tokyo: dict[str, object], gyoza_available: bool, reason: FailureReason
) -> None:
    busy = await world.taken_in("ramen")
    await services.accept(world.ports, "tokyo-kitchen", busy.order_id, 10)  # one on the go
    world.kitchens.kitchens_by_id["tokyo-kitchen"] = kitchen("tokyo-kitchen", **tokyo)
    world.kitchens.menu["gyoza"] = MenuLine("gyoza", "tokyo-kitchen", 8, gyoza_available)
    order = world.confirmed("ramen", "gyoza")
    assert await services.take_in(world.ports, order)
    ticket = world.kitchens.tickets_by_id[order.order_id]
    assert (ticket.state, ticket.reason) == (TicketState.REJECTED, reason.value)
    current = world.order(order.order_id)
    assert (current.status, current.reason) == (OrderStatus.RESTAURANT_REJECTED, reason)
    assert current.detail and "Tokyo Kitchen" in current.detail
    assert world.announced.updates[-1].status is OrderStatus.RESTAURANT_REJECTED


async def test_a_rejection_at_intake_that_died_before_its_ticket_is_finished(
    world: World,
) -> None:
    world.kitchens.kitchens_by_id["tokyo-kitchen"] = kitchen("tokyo-kitchen", accepting=False)
    order = world.confirmed("ramen")
    world.announced.failing = 1  # stored, then the process "dies" before announcing
    with pytest.raises(ServiceUnavailable):
        await services.take_in(world.ports, order)
    assert not world.kitchens.tickets_by_id
    assert world.order(order.order_id).status is OrderStatus.RESTAURANT_REJECTED
    # The CONFIRMED event comes back (its offset was not committed): the current state says
    # rejected, so the ticket is recorded and the rejection announced again.
    await services.order_events(world.ports, [order.status_update()])
    assert world.kitchens.tickets_by_id[order.order_id].state is TicketState.REJECTED
    assert world.announced.statuses() == [OrderStatus.RESTAURANT_REJECTED]
    assert world.order(order.order_id).version == 4


# --- the staff's steps -----------------------------------------------------------------------


async def test_accept_prepare_delay_ready_move_the_ticket_and_the_order(world: World) -> None:
    order = await world.taken_in("ramen")
    oid = order.order_id
    accepted = await services.accept(world.ports, "tokyo-kitchen", oid, 15)
    assert accepted.state is TicketState.ACCEPTED
    assert accepted.ready_by == NOW + timedelta(minutes=15)
    current = world.order(oid)
    assert current.status is OrderStatus.RESTAURANT_ACCEPTED
    assert current.kitchen is not None
    assert (current.kitchen.restaurant_id, current.kitchen.restaurant_name) == (
        "tokyo-kitchen",
        "Tokyo Kitchen",
    )
    assert current.kitchen.ready_by == NOW + timedelta(minutes=15)
    # A repeat (a double click, a retried request) changes nothing.
    again = await services.accept(world.ports, "tokyo-kitchen", oid, 30)
    assert again.ready_by == accepted.ready_by and world.order(oid).version == 4

    await services.prepare(world.ports, "tokyo-kitchen", oid)
    world.now = NOW + timedelta(minutes=5)
    delayed = await services.delay(world.ports, "tokyo-kitchen", oid, 20)
    assert delayed.ready_by == NOW + timedelta(minutes=25)
    current = world.order(oid)
    assert current.status is OrderStatus.PREPARING and current.kitchen is not None
    assert current.kitchen.ready_by == NOW + timedelta(minutes=25)
    ready = await services.ready(world.ports, "tokyo-kitchen", oid)
    assert ready.state is TicketState.READY
    current = world.order(oid)
    assert current.status is OrderStatus.READY_FOR_PICKUP
    assert current.kitchen is not None and current.kitchen.ready_by == NOW + timedelta(minutes=25)
    assert world.announced.statuses() == [
        OrderStatus.RESTAURANT_ACCEPTED,
        OrderStatus.PREPARING,
        OrderStatus.PREPARING,
        OrderStatus.READY_FOR_PICKUP,
    ]


async def test_ready_straight_from_accepted_goes_through_preparing(world: World) -> None:
    order = await world.taken_in("ramen")
    await services.accept(world.ports, "tokyo-kitchen", order.order_id, 5)
    await services.ready(world.ports, "tokyo-kitchen", order.order_id)
    assert world.announced.statuses() == [
        OrderStatus.RESTAURANT_ACCEPTED,
        OrderStatus.PREPARING,
        OrderStatus.READY_FOR_PICKUP,
    ]


async def test_a_courier_assigned_in_between_changes_nothing_for_the_kitchen(
    world: World,
) -> None:
    order = await world.taken_in("ramen")
    oid = order.order_id
    await services.accept(world.ports, "tokyo-kitchen", oid, 5)
    world.store.snapshots[oid] = advance(world.order(oid), OrderStatus.COURIER_ASSIGNED)
    await services.ready(world.ports, "tokyo-kitchen", oid)  # allowed straight from there
    assert world.order(oid).status is OrderStatus.READY_FOR_PICKUP


async def test_reject_moves_the_order_to_restaurant_rejected_with_the_reason(
    world: World,
) -> None:
    order = await world.taken_in("ramen")
    view = await services.reject(
        world.ports, "tokyo-kitchen", order.order_id, FailureReason.KITCHEN_BUSY, "swamped"
    )
    assert (view.state, view.reason) == (TicketState.REJECTED, "KITCHEN_BUSY")
    current = world.order(order.order_id)
    assert (current.status, current.reason, current.detail) == (
        OrderStatus.RESTAURANT_REJECTED,
        FailureReason.KITCHEN_BUSY,
        "swamped",
    )
    with pytest.raises(TicketConflict, match="cannot be accepted"):
        await services.accept(world.ports, "tokyo-kitchen", order.order_id, 5)


async def test_another_restaurants_order_is_not_found(world: World) -> None:
    order = await world.taken_in("ramen")
    for step in (
        services.accept(world.ports, "central-kitchen", order.order_id, 5),
        services.get_ticket(world.ports, "central-kitchen", order.order_id),
        services.prepare(world.ports, "tokyo-kitchen", uuid.uuid4()),
    ):
        with pytest.raises(TicketNotFound):
            await step
    with pytest.raises(RestaurantNotFound):
        await services.accept(world.ports, "nowhere", order.order_id, 5)
    assert world.kitchens.tickets_by_id[order.order_id].state is TicketState.PENDING


async def test_a_step_its_state_cannot_take_is_a_conflict(world: World) -> None:
    order = await world.taken_in("ramen")
    with pytest.raises(TicketConflict, match="is pending"):
        await services.ready(world.ports, "tokyo-kitchen", order.order_id)


async def test_a_step_on_a_cancelled_order_is_a_conflict_and_changes_no_ticket(
    world: World,
) -> None:
    order = await world.taken_in("ramen")
    world.store.snapshots[order.order_id] = advance(order, OrderStatus.CANCELLED)
    with pytest.raises(TicketConflict, match="CANCELLED"):
        await services.accept(world.ports, "tokyo-kitchen", order.order_id, 5)
    assert world.kitchens.tickets_by_id[order.order_id].state is TicketState.PENDING


async def test_a_step_whose_announcement_failed_is_finished_by_its_repeat(world: World) -> None:
    order = await world.taken_in("ramen")
    world.announced.failing = 1
    with pytest.raises(ServiceUnavailable):
        await services.accept(world.ports, "tokyo-kitchen", order.order_id, 5)
    # The order was stored as accepted, the ticket rolled back with the failed announcement.
    assert world.kitchens.tickets_by_id[order.order_id].state is TicketState.PENDING
    assert world.order(order.order_id).status is OrderStatus.RESTAURANT_ACCEPTED
    await services.accept(world.ports, "tokyo-kitchen", order.order_id, 5)
    assert world.kitchens.tickets_by_id[order.order_id].state is TicketState.ACCEPTED
    assert world.announced.statuses() == [OrderStatus.RESTAURANT_ACCEPTED]  # announced again
    assert world.order(order.order_id).version == 4


async def test_an_accept_retried_later_after_a_failed_announcement_keeps_its_first_time(
    world: World,
) -> None:
    """The reviewer's finding on issue 17: the retry, a moment later, asked for a new ready-by
    time, found the order RESTAURANT_ACCEPTED already and was refused (409) for good."""
    order = await world.taken_in("ramen")
    world.announced.failing = 1
    with pytest.raises(ServiceUnavailable):
        await services.accept(world.ports, "tokyo-kitchen", order.order_id, 5)
    first = world.order(order.order_id).kitchen
    assert first is not None
    world.now += timedelta(seconds=20)
    ticket = await services.accept(world.ports, "tokyo-kitchen", order.order_id, 8)
    assert ticket.state is TicketState.ACCEPTED
    assert ticket.ready_by == first.ready_by  # the order's plan stands
    assert world.kitchens.tickets_by_id[order.order_id].ready_by == first.ready_by
    assert world.order(order.order_id).version == 4
    assert world.announced.statuses() == [OrderStatus.RESTAURANT_ACCEPTED]


# --- the order's own events ------------------------------------------------------------------


async def test_cancelled_and_picked_up_events_close_tickets(world: World) -> None:
    cancelled, collected = await world.taken_in("ramen"), await world.taken_in("gyoza")
    await services.accept(world.ports, "tokyo-kitchen", collected.order_id, 5)
    unknown = cancelled.model_copy(update={"order_id": uuid.uuid4()})
    await services.order_events(
        world.ports,
        [
            advance(cancelled, OrderStatus.CANCELLED).status_update(),
            collected.model_copy(update={"status": OrderStatus.PICKED_UP}).status_update(),
            advance(unknown, OrderStatus.CANCELLED).status_update(),  # no ticket: nothing
            advance(collected, OrderStatus.RESTAURANT_REJECTED).status_update(),  # not ours
        ],
    )
    tickets = world.kitchens.tickets_by_id
    assert tickets[cancelled.order_id].state is TicketState.CANCELLED
    assert tickets[collected.order_id].state is TicketState.PICKED_UP


async def test_a_confirmed_event_is_taken_in_from_the_current_state(world: World) -> None:
    order, seed = world.confirmed("ramen"), world.confirmed("ramen", address=False)
    await services.order_events(world.ports, [order.status_update(), seed.status_update()])
    assert world.kitchens.tickets_by_id[order.order_id].state is TicketState.PENDING
    assert seed.order_id not in world.kitchens.tickets_by_id


# --- the timeout sweep -----------------------------------------------------------------------


async def test_unanswered_orders_are_rejected_for_the_timeout(world: World) -> None:
    stale, fresh = await world.taken_in("ramen"), await world.taken_in("gyoza")
    world.kitchens.received[stale.order_id] -= timedelta(seconds=TIMEOUT + 1)
    assert await services.expire_pending(world.ports) == 1
    ticket = world.kitchens.tickets_by_id[stale.order_id]
    assert (ticket.state, ticket.reason) == (TicketState.REJECTED, "RESTAURANT_TIMEOUT")
    current = world.order(stale.order_id)
    assert (current.status, current.reason) == (
        OrderStatus.RESTAURANT_REJECTED,
        FailureReason.RESTAURANT_TIMEOUT,
    )
    assert world.kitchens.tickets_by_id[fresh.order_id].state is TicketState.PENDING
    assert await services.expire_pending(world.ports) == 0  # done once


async def test_a_stale_ticket_whose_order_moved_on_follows_it(world: World) -> None:
    accepted, cancelled = await world.taken_in("ramen"), await world.taken_in("gyoza")
    world.announced.failing = 1
    with pytest.raises(ServiceUnavailable):  # the order accepted, the ticket left PENDING
        await services.accept(world.ports, "tokyo-kitchen", accepted.order_id, 5)
    world.store.snapshots[accepted.order_id] = advance(
        world.order(accepted.order_id), OrderStatus.COURIER_ASSIGNED
    )
    world.store.snapshots[cancelled.order_id] = advance(cancelled, OrderStatus.CANCELLED)
    for order_id in (accepted.order_id, cancelled.order_id):
        world.kitchens.received[order_id] -= timedelta(seconds=TIMEOUT + 1)
    assert await services.expire_pending(world.ports) == 0
    tickets = world.kitchens.tickets_by_id
    assert tickets[accepted.order_id].state is TicketState.ACCEPTED
    assert tickets[accepted.order_id].ready_by == NOW + timedelta(minutes=5)
    assert tickets[cancelled.order_id].state is TicketState.CANCELLED


# --- menus, opening, reads -------------------------------------------------------------------


async def test_availability_is_kept_here_and_told_to_the_catalogue(world: World) -> None:
    entry = await services.set_availability(world.ports, "tokyo-kitchen", "gyoza", False)
    assert (entry.item_id, entry.available) == ("gyoza", False)
    assert world.catalogue.calls == [("gyoza", False)]
    assert not world.kitchens.menu["gyoza"].available
    check = await services.check_order(world.ports, ["gyoza", "ramen"])
    assert (check.restaurant_id, check.unavailable, check.refusal) == (
        "tokyo-kitchen",
        ["gyoza"],
        "ITEM_UNAVAILABLE",
    )


async def test_an_item_of_another_menu_is_not_found(world: World) -> None:
    with pytest.raises(ItemNotOnMenu):
        await services.set_availability(world.ports, "tokyo-kitchen", "caesar-salad", False)
    with pytest.raises(ItemNotOnMenu):
        await services.set_availability(world.ports, "tokyo-kitchen", "test-x", False)
    with pytest.raises(RestaurantNotFound):
        await services.set_availability(world.ports, "nowhere", "gyoza", False)
    assert not world.catalogue.calls


async def test_availability_is_not_kept_when_the_catalogue_is_away(world: World) -> None:
    world.catalogue.down = True
    with pytest.raises(ServiceUnavailable):
        await services.set_availability(world.ports, "tokyo-kitchen", "gyoza", False)
    assert world.kitchens.menu["gyoza"].available  # rolled back: the staff try again


async def test_an_item_the_catalogue_does_not_know_is_marked_here_alone(world: World) -> None:
    world.catalogue.refuse = 404
    entry = await services.set_availability(world.ports, "tokyo-kitchen", "gyoza", False)
    assert not entry.available
    world.catalogue.refuse = 403
    with pytest.raises(RequestRefused):
        await services.set_availability(world.ports, "tokyo-kitchen", "gyoza", True)


async def test_opening_changes_and_the_order_check(world: World) -> None:
    view = await services.set_opening(
        world.ports, "tokyo-kitchen", OpeningChange(opens_at=time(18), closes_at=time(23))
    )
    assert (view.opens_at, view.closes_at, view.open_now) == (time(18), time(23), False)
    check = await services.check_order(world.ports, ["ramen"])
    assert (check.open_now, check.refusal) == (False, "RESTAURANT_CLOSED")
    world.now = NOW.replace(hour=18)  # 19:00 in Berlin
    assert (await services.check_order(world.ports, ["ramen"])).refusal is None
    paused = await services.set_opening(
        world.ports, "tokyo-kitchen", OpeningChange(accepting=False)
    )
    assert not paused.accepting and not paused.open_now
    central = await services.check_order(world.ports, ["test-x"])
    assert (central.restaurant_id, central.open_now) == ("central-kitchen", True)


async def test_reads(world: World) -> None:
    first, second = await world.taken_in("ramen"), await world.taken_in("gyoza")
    await services.accept(world.ports, "tokyo-kitchen", second.order_id, 5)
    listed = await services.list_restaurants(world.ports)
    assert [r.restaurant_id for r in listed] == ["central-kitchen", "tokyo-kitchen"]
    tokyo = listed[1]
    assert tokyo.active_tickets == 1 and tokyo.open_now
    assert [i.item_id for i in tokyo.items] == ["gyoza", "ramen"]
    open_tickets = await services.list_tickets(world.ports, "tokyo-kitchen", None)
    assert {t.order_id for t in open_tickets} == {first.order_id, second.order_id}
    pending = await services.list_tickets(world.ports, "tokyo-kitchen", TicketState.PENDING)
    assert [t.order_id for t in pending] == [first.order_id]
    assert pending[0].suggested_ready_in_minutes == 13  # 12 + 12 * 1/20, up to a half minute
    with pytest.raises(RestaurantNotFound):
        await services.list_tickets(world.ports, "nowhere", None)
