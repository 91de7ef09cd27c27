"""Use cases of the restaurant service: take in confirmed orders as tickets (or reject them at
once), the staff's steps, tickets closed by the order's own events, the timeout sweep, the
restaurants' menus and opening, and reads.

Handlers receive `RestaurantPorts` (a repository with units of work, the order's status, the
catalogue), never a connection, so the same code runs against PostgreSQL, Kafka and the
inventory service in the service and against fakes in a unit test.

An order's status moves inside the transaction that records its ticket's step: if the move
fails, the ticket's change rolls back and the step may be asked for again; a move found taken
already is announced again, so a crash between the two leaves nothing half done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol
from uuid import UUID

from foodflow.contracts.orders import (
    FailureReason,
    KitchenPlan,
    OrderSnapshot,
    OrderStatus,
    OrderStatusUpdate,
    utcnow,
)
from foodflow.contracts.restaurant import (
    MenuEntry,
    OpeningChange,
    OrderCheckResult,
    RestaurantView,
    TicketState,
    TicketView,
)
from foodflow.contracts.restaurant import (
    TicketLine as TicketLineView,
)
from foodflow.platform.db.unit_of_work import Transaction
from foodflow.platform.http.client import RequestRefused
from foodflow.restaurant_service.domain import (
    OPEN,
    ItemNotOnMenu,
    Kitchen,
    MenuLine,
    RestaurantNotFound,
    Ticket,
    TicketConflict,
    TicketLine,
    TicketNotFound,
    choose_restaurant,
    intake_refusal,
    ready_by,
    refusal_detail,
    suggested_ready_in,
    unavailable_items,
)

log = logging.getLogger(__name__)
# Tickets looked at per sweep, and listed per request at most.
SWEEP_BATCH = 50
TICKETS_LISTED = 200


class UnitOfWork(Transaction, Protocol):
    async def kitchen(self, restaurant_id: str) -> Kitchen | None: ...
    async def active_tickets(self, restaurant_id: str) -> int: ...
    async def menu_lines(self, item_ids: Iterable[str]) -> dict[str, MenuLine]: ...
    async def ticket(self, order_id: UUID) -> Ticket | None: ...
    async def add(self, ticket: Ticket) -> bool: ...
    async def save(self, ticket: Ticket) -> None: ...
    async def set_available(
        self, restaurant_id: str, item_id: str, available: bool
    ) -> MenuLine | None: ...
    async def save_kitchen(self, kitchen: Kitchen) -> None: ...


class Kitchens(Protocol):
    """Reads outside a transaction, units of work for changes."""

    def unit_of_work(self) -> UnitOfWork: ...
    async def kitchens(self) -> list[Kitchen]: ...
    async def kitchen(self, restaurant_id: str) -> Kitchen | None: ...
    async def menu_lines(self, item_ids: Iterable[str]) -> dict[str, MenuLine]: ...
    async def menus(self, restaurant_ids: Collection[str]) -> list[MenuLine]: ...
    async def active_counts(self) -> dict[str, int]: ...
    async def ticket(self, order_id: UUID) -> Ticket | None: ...
    async def tickets(
        self, restaurant_id: str, states: Collection[TicketState], limit: int
    ) -> list[Ticket]: ...
    async def stale_pending(self, older_than_seconds: float, limit: int) -> list[UUID]: ...


class OrderStatuses(Protocol):
    """The order's lifecycle: its current snapshot, and one idempotent step on (stored, then
    announced); a step the order cannot take is a `TicketConflict`."""

    async def snapshot(self, order_id: UUID) -> OrderSnapshot | None: ...
    async def move(
        self,
        order_id: UUID,
        target: OrderStatus,
        *,
        via: OrderStatus | None = None,
        reason: FailureReason | None = None,
        detail: str | None = None,
        kitchen: KitchenPlan | None = None,
    ) -> OrderSnapshot: ...


class Catalogue(Protocol):
    """Where customers see an item as orderable or not
    (`foodflow.clients.inventory.InventoryClient`)."""

    async def set_availability(self, item_id: str, available: bool) -> object: ...


@dataclass(frozen=True)
class RestaurantPorts:
    """Everything the use cases work with; the app builds the real ones, tests pass fakes."""

    kitchens: Kitchens
    statuses: OrderStatuses
    catalogue: Catalogue
    accept_timeout_seconds: float
    clock: Callable[[], datetime] = utcnow


# --- intake ----------------------------------------------------------------------------------


async def take_in(ports: RestaurantPorts, order: OrderSnapshot) -> bool:
    """A confirmed order with an address becomes a PENDING ticket at the restaurant of its
    first item on a menu, or is rejected at once (closed, an item unavailable, the kitchen
    full). True when a ticket was recorded now."""
    if order.delivery_address is None:
        return False
    if order.status is OrderStatus.RESTAURANT_REJECTED:
        return await _finish_rejection(ports, order)
    if order.status is not OrderStatus.CONFIRMED:
        return False
    item_ids = [item.item_id for item in order.items]
    async with ports.kitchens.unit_of_work() as uow:
        menu = await uow.menu_lines(item_ids)
        kitchen = await _locked_kitchen(uow, choose_restaurant(item_ids, menu))
        unavailable = unavailable_items(item_ids, menu)
        active = await uow.active_tickets(kitchen.restaurant_id)
        refusal = intake_refusal(kitchen, ports.clock(), unavailable, active)
        ticket = Ticket.pending(order.order_id, kitchen.restaurant_id, _lines(order))
        if refusal is not None:
            ticket = ticket.reject(refusal, refusal_detail(refusal, kitchen, unavailable))
        if not await uow.add(ticket):
            return False  # taken in before: a repeated event
        if refusal is not None:
            await ports.statuses.move(
                order.order_id,
                OrderStatus.RESTAURANT_REJECTED,
                reason=refusal,
                detail=ticket.detail,
            )
        await uow.commit()
    if refusal is None:
        log.info("Order %s waits for %s to accept it", order.order_id, kitchen.restaurant_id)
    else:
        log.warning("Order %s rejected at once: %s", order.order_id, ticket.detail)
    return True


async def _finish_rejection(ports: RestaurantPorts, order: OrderSnapshot) -> bool:
    """The order was rejected at intake but its ticket was never recorded (the process died
    between the two): record it, and announce the rejection again."""
    item_ids = [item.item_id for item in order.items]
    async with ports.kitchens.unit_of_work() as uow:
        if await uow.ticket(order.order_id) is not None:
            return False
        menu = await uow.menu_lines(item_ids)
        restaurant_id = choose_restaurant(item_ids, menu)
        ticket = Ticket.pending(order.order_id, restaurant_id, _lines(order)).follow(order)
        if not await uow.add(ticket):
            return False
        await ports.statuses.move(
            order.order_id, OrderStatus.RESTAURANT_REJECTED, reason=order.reason
        )
        await uow.commit()
    log.warning("Order %s: its rejection at intake finished now", order.order_id)
    return True


def _lines(order: OrderSnapshot) -> list[TicketLine]:
    return [TicketLine(item.item_id, item.quantity) for item in order.items]


async def _locked_kitchen(uow: UnitOfWork, restaurant_id: str) -> Kitchen:
    kitchen = await uow.kitchen(restaurant_id)
    if kitchen is None:
        raise RestaurantNotFound(f"no restaurant {restaurant_id}")
    return kitchen


async def order_events(ports: RestaurantPorts, updates: Iterable[OrderStatusUpdate]) -> None:
    """What the orders' own events mean to their tickets, in order: CONFIRMED with an address
    takes the order in (from its current state, not the event's), CANCELLED and PICKED_UP
    close its ticket; any other event is not the kitchen's business."""
    for update in updates:
        order_id, status = update.order_id, update.status
        try:
            if status is OrderStatus.CONFIRMED and update.delivery_address is not None:
                order = await ports.statuses.snapshot(order_id)
                if order is not None:
                    await take_in(ports, order)
            elif status in (OrderStatus.CANCELLED, OrderStatus.PICKED_UP):
                await close_ticket(ports, order_id, TicketState(status.value))
        except TicketConflict as exc:
            # The order moved on meanwhile (cancelled): nothing for the kitchen to do.
            log.info("Order %s: %s", order_id, exc)


async def close_ticket(ports: RestaurantPorts, order_id: UUID, state: TicketState) -> bool:
    """The order was cancelled or collected: its open ticket is closed as well."""
    async with ports.kitchens.unit_of_work() as uow:
        before = await uow.ticket(order_id)
        if before is None:
            return False
        after = before.close(state)
        if after is before:
            return False
        await uow.save(after)
        await uow.commit()
    log.info("Ticket of order %s %s", order_id, state)
    return True


# --- the staff's steps -----------------------------------------------------------------------


async def accept(
    ports: RestaurantPorts, restaurant_id: str, order_id: UUID, ready_in_minutes: float
) -> TicketView:
    """PENDING -> ACCEPTED, ready in `ready_in_minutes`; the order RESTAURANT_ACCEPTED with
    the kitchen's plan."""
    when = ready_by(ports.clock(), ready_in_minutes)
    return await _staff_step(ports, restaurant_id, order_id, lambda t: t.accept(when))


async def prepare(ports: RestaurantPorts, restaurant_id: str, order_id: UUID) -> TicketView:
    """ACCEPTED -> PREPARING (the order too)."""
    return await _staff_step(ports, restaurant_id, order_id, lambda t: t.prepare())


async def delay(
    ports: RestaurantPorts, restaurant_id: str, order_id: UUID, ready_in_minutes: float
) -> TicketView:
    """The food is now ready in `ready_in_minutes`: PREPARING with the new time (the order
    PREPARING again, with the new plan)."""
    when = ready_by(ports.clock(), ready_in_minutes)
    return await _staff_step(ports, restaurant_id, order_id, lambda t: t.delay(when))


async def ready(ports: RestaurantPorts, restaurant_id: str, order_id: UUID) -> TicketView:
    """-> READY; the order READY_FOR_PICKUP (through PREPARING when it was not there yet)."""
    return await _staff_step(ports, restaurant_id, order_id, lambda t: t.ready())


async def reject(
    ports: RestaurantPorts,
    restaurant_id: str,
    order_id: UUID,
    reason: FailureReason,
    detail: str | None,
) -> TicketView:
    """PENDING -> REJECTED for `reason`; the order RESTAURANT_REJECTED (the delivery service
    then refunds and cancels it)."""
    return await _staff_step(ports, restaurant_id, order_id, lambda t: t.reject(reason, detail))


async def _staff_step(
    ports: RestaurantPorts,
    restaurant_id: str,
    order_id: UUID,
    step: Callable[[Ticket], Ticket],
) -> TicketView:
    kitchen = await _kitchen(ports, restaurant_id)
    async with ports.kitchens.unit_of_work() as uow:
        before = await uow.ticket(order_id)
        if before is None or before.restaurant_id != restaurant_id:
            raise TicketNotFound(f"no order {order_id} at {restaurant_id}")
        after = step(before)
        if after is not before:
            moved = await _move_order(ports, kitchen, after)
            if moved is not None and moved.kitchen is not None:
                # The order's plan is the truth: an acceptance retried after a crash keeps
                # the ready-by time it was first taken with.
                after = replace(after, ready_by=moved.kitchen.ready_by)
            await uow.save(after)
            await uow.commit()
            log.info("Ticket of order %s %s at %s", order_id, after.state, restaurant_id)
    return await get_ticket(ports, restaurant_id, order_id)


async def _move_order(
    ports: RestaurantPorts, kitchen: Kitchen, ticket: Ticket
) -> OrderSnapshot | None:
    """The order's step for the ticket's new state; the order as it is then."""
    plan = kitchen_plan(kitchen, ticket.ready_by) if ticket.ready_by is not None else None
    order_id = ticket.order_id
    if ticket.state is TicketState.ACCEPTED:
        return await ports.statuses.move(
            order_id,
            OrderStatus.RESTAURANT_ACCEPTED,
            kitchen=plan,
            detail=f"{kitchen.name} accepted it, ready by {_clock_time(ticket.ready_by)}",
        )
    if ticket.state is TicketState.PREPARING:
        return await ports.statuses.move(
            order_id,
            OrderStatus.PREPARING,
            kitchen=plan,
            detail=f"{kitchen.name}: ready by {_clock_time(ticket.ready_by)}",
        )
    if ticket.state is TicketState.READY:
        return await ports.statuses.move(
            order_id, OrderStatus.READY_FOR_PICKUP, via=OrderStatus.PREPARING, kitchen=plan
        )
    if ticket.state is TicketState.REJECTED:
        return await ports.statuses.move(
            order_id,
            OrderStatus.RESTAURANT_REJECTED,
            reason=FailureReason(ticket.reason) if ticket.reason else None,
            detail=ticket.detail or f"{kitchen.name} rejected it ({ticket.reason})",
        )
    return None


def kitchen_plan(kitchen: Kitchen, ready: datetime) -> KitchenPlan:
    return KitchenPlan(
        restaurant_id=kitchen.restaurant_id,
        restaurant_name=kitchen.name,
        lat=kitchen.lat,
        lon=kitchen.lon,
        ready_by=ready,
    )


def _clock_time(when: datetime | None) -> str:
    return when.strftime("%H:%M UTC") if when is not None else "?"


# --- the timeout sweep -----------------------------------------------------------------------


async def expire_pending(ports: RestaurantPorts) -> int:
    """Reject the orders a restaurant left unanswered past the timeout (RESTAURANT_TIMEOUT);
    a pending ticket whose order moved on without it follows the order. Returns how many
    were rejected for the timeout."""
    expired = 0
    for order_id in await ports.kitchens.stale_pending(ports.accept_timeout_seconds, SWEEP_BATCH):
        try:
            expired += await _expire(ports, order_id)
        except TicketConflict as exc:
            log.info("Order %s not expired: %s", order_id, exc)
    return expired


async def _expire(ports: RestaurantPorts, order_id: UUID) -> bool:
    async with ports.kitchens.unit_of_work() as uow:
        ticket = await uow.ticket(order_id)
        if ticket is None or ticket.state is not TicketState.PENDING:
            return False  # answered meanwhile
        order = await ports.statuses.snapshot(order_id)
        timed_out = order is not None and order.status is OrderStatus.CONFIRMED
        if order is None:
            after = ticket.close(TicketState.CANCELLED)  # the order's state is gone
        elif timed_out:
            detail = f"no answer from the restaurant within {ports.accept_timeout_seconds:g}s"
            after = ticket.reject(FailureReason.RESTAURANT_TIMEOUT, detail)
            await ports.statuses.move(
                order_id,
                OrderStatus.RESTAURANT_REJECTED,
                reason=FailureReason.RESTAURANT_TIMEOUT,
                detail=detail,
            )
        else:
            after = ticket.follow(order)
            if order.status is OrderStatus.RESTAURANT_REJECTED:
                # Rejected by a step that died before its ticket was recorded: announce again.
                await ports.statuses.move(
                    order_id, OrderStatus.RESTAURANT_REJECTED, reason=order.reason
                )
        await uow.save(after)
        await uow.commit()
    if timed_out:
        log.warning("Order %s rejected: %s", order_id, after.detail)
    else:
        log.info("Ticket of order %s follows its order: %s", order_id, after.state)
    return timed_out


# --- menus and opening -----------------------------------------------------------------------


async def set_availability(
    ports: RestaurantPorts, restaurant_id: str, item_id: str, available: bool
) -> MenuEntry:
    """Mark an item of the restaurant's menu (un)available, here and in the catalogue
    customers order from; 404 for an item not on this restaurant's menu."""
    await _kitchen(ports, restaurant_id)
    async with ports.kitchens.unit_of_work() as uow:
        line = await uow.set_available(restaurant_id, item_id, available)
        if line is None:
            raise ItemNotOnMenu(f"{item_id} is not on the menu of {restaurant_id}")
        await _tell_catalogue(ports.catalogue, item_id, available)
        await uow.commit()
    log.info("Item %s of %s available=%s", item_id, restaurant_id, available)
    return _menu_entry(line)


async def _tell_catalogue(catalogue: Catalogue, item_id: str, available: bool) -> None:
    try:
        await catalogue.set_availability(item_id, available)
    except RequestRefused as exc:
        if exc.status != 404:
            raise
        # Not in the catalogue: nobody can order it there, there is nothing to hide.
        log.info("Item %s is not in the catalogue: %s", item_id, exc.message)


async def set_opening(
    ports: RestaurantPorts, restaurant_id: str, change: OpeningChange
) -> RestaurantView:
    """Pause or resume taking orders, or change the hours (both times, local)."""
    async with ports.kitchens.unit_of_work() as uow:
        kitchen = await _locked_kitchen(uow, restaurant_id)
        changed = kitchen.with_opening(change.accepting, change.opens_at, change.closes_at)
        if changed != kitchen:
            await uow.save_kitchen(changed)
            await uow.commit()
            log.info(
                "%s opening: %s-%s accepting=%s",
                restaurant_id,
                changed.opens_at,
                changed.closes_at,
                changed.accepting,
            )
    return await get_restaurant(ports, restaurant_id)


# --- reads -----------------------------------------------------------------------------------


async def list_restaurants(ports: RestaurantPorts) -> list[RestaurantView]:
    """Every restaurant with its opening, load and menu, by id."""
    kitchens = await ports.kitchens.kitchens()
    return await _views(ports, kitchens)


async def get_restaurant(ports: RestaurantPorts, restaurant_id: str) -> RestaurantView:
    (view,) = await _views(ports, [await _kitchen(ports, restaurant_id)])
    return view


async def _views(ports: RestaurantPorts, kitchens: list[Kitchen]) -> list[RestaurantView]:
    menus = await ports.kitchens.menus([k.restaurant_id for k in kitchens])
    active = await ports.kitchens.active_counts()
    now = ports.clock()
    return [
        restaurant_view(
            kitchen,
            [line for line in menus if line.restaurant_id == kitchen.restaurant_id],
            active.get(kitchen.restaurant_id, 0),
            now,
        )
        for kitchen in kitchens
    ]


def restaurant_view(
    kitchen: Kitchen, menu: list[MenuLine], active: int, now: datetime
) -> RestaurantView:
    return RestaurantView(
        restaurant_id=kitchen.restaurant_id,
        name=kitchen.name,
        lat=kitchen.lat,
        lon=kitchen.lon,
        timezone=kitchen.timezone,
        opens_at=kitchen.opens_at,
        closes_at=kitchen.closes_at,
        accepting=kitchen.accepting,
        open_now=kitchen.open_at(now),
        capacity=kitchen.capacity,
        active_tickets=active,
        items=[_menu_entry(line) for line in menu],
    )


def _menu_entry(line: MenuLine) -> MenuEntry:
    return MenuEntry(item_id=line.item_id, prep_minutes=line.prep_minutes, available=line.available)


async def check_order(ports: RestaurantPorts, item_ids: list[str]) -> OrderCheckResult:
    """Whether the restaurant that would cook these items takes the order now: open, and none
    of them marked unavailable (capacity is decided when the order arrives)."""
    menu = await ports.kitchens.menu_lines(item_ids)
    kitchen = await _kitchen(ports, choose_restaurant(item_ids, menu))
    open_now = kitchen.open_at(ports.clock())
    unavailable = unavailable_items(item_ids, menu)
    refusal = (
        FailureReason.RESTAURANT_CLOSED
        if not open_now
        else FailureReason.ITEM_UNAVAILABLE
        if unavailable
        else None
    )
    return OrderCheckResult(
        restaurant_id=kitchen.restaurant_id,
        restaurant_name=kitchen.name,
        open_now=open_now,
        unavailable=unavailable,
        refusal=refusal.value if refusal is not None else None,
    )


async def list_tickets(
    ports: RestaurantPorts, restaurant_id: str, state: TicketState | None
) -> list[TicketView]:
    """The restaurant's tickets in `state` (the open ones when not given), oldest first."""
    kitchen = await _kitchen(ports, restaurant_id)
    states = {state} if state is not None else OPEN
    tickets = await ports.kitchens.tickets(restaurant_id, states, TICKETS_LISTED)
    return await _ticket_views(ports, kitchen, tickets)


async def get_ticket(ports: RestaurantPorts, restaurant_id: str, order_id: UUID) -> TicketView:
    """One order's ticket at this restaurant; 404 for an order of another restaurant."""
    kitchen = await _kitchen(ports, restaurant_id)
    ticket = await ports.kitchens.ticket(order_id)
    if ticket is None or ticket.restaurant_id != restaurant_id:
        raise TicketNotFound(f"no order {order_id} at {restaurant_id}")
    (view,) = await _ticket_views(ports, kitchen, [ticket])
    return view


async def _ticket_views(
    ports: RestaurantPorts, kitchen: Kitchen, tickets: list[Ticket]
) -> list[TicketView]:
    menu = await ports.kitchens.menu_lines({li.item_id for t in tickets for li in t.lines})
    active = (await ports.kitchens.active_counts()).get(kitchen.restaurant_id, 0)
    now = ports.clock()
    return [ticket_view(t, menu, active, kitchen.capacity, now) for t in tickets]


def ticket_view(
    ticket: Ticket, menu: Mapping[str, MenuLine], active: int, capacity: int, now: datetime
) -> TicketView:
    return TicketView(
        order_id=ticket.order_id,
        restaurant_id=ticket.restaurant_id,
        state=ticket.state,
        lines=[TicketLineView(item_id=li.item_id, quantity=li.quantity) for li in ticket.lines],
        suggested_ready_in_minutes=suggested_ready_in(ticket.lines, menu, active, capacity),
        ready_by=ticket.ready_by,
        reason=ticket.reason,
        received_at=ticket.received_at or now,
        updated_at=ticket.updated_at or now,
    )


async def _kitchen(ports: RestaurantPorts, restaurant_id: str) -> Kitchen:
    kitchen = await ports.kitchens.kitchen(restaurant_id)
    if kitchen is None:
        raise RestaurantNotFound(f"no restaurant {restaurant_id}")
    return kitchen
