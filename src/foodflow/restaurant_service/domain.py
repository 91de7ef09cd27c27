"""Kitchens, their opening hours and menus, and the ticket of each order a kitchen cooks.
Pure: standard library and contracts only.

A ticket moves PENDING -> ACCEPTED -> PREPARING -> READY -> PICKED_UP; PENDING -> REJECTED
(the staff, the intake's own checks, or the timeout); any open state -> CANCELLED (the order
was cancelled). A delay keeps it PREPARING with a later ready-by time. Asking for the state a
ticket is already in changes nothing, so a retried step is harmless; a step its state cannot
take is a `TicketConflict`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from foodflow.contracts.orders import FailureReason, OrderSnapshot, OrderStatus
from foodflow.contracts.restaurant import MAX_READY_IN_MINUTES, TicketState

# Items on no menu (the tests' and the bench's own) are cooked here, in this many minutes.
DEFAULT_RESTAURANT = "central-kitchen"
DEFAULT_PREP_MINUTES = 10.0

OPEN = frozenset(
    {TicketState.PENDING, TicketState.ACCEPTED, TicketState.PREPARING, TicketState.READY}
)
# What counts against a kitchen's capacity: the orders it has said yes to and not finished.
ACTIVE = frozenset({TicketState.ACCEPTED, TicketState.PREPARING})
CLOSED = frozenset({TicketState.PICKED_UP, TicketState.REJECTED, TicketState.CANCELLED})


class RestaurantError(Exception):
    """A request the restaurant service cannot carry out; the message is meant for the caller."""


class NotFound(RestaurantError):
    pass


class RestaurantNotFound(NotFound):
    pass


class TicketNotFound(NotFound):
    """No ticket of that order, or not at this restaurant (the same answer: a restaurant
    learns nothing of another's orders)."""


class ItemNotOnMenu(NotFound):
    pass


class TicketConflict(RestaurantError):
    """The ticket (or its order) is in a state the requested step cannot leave from."""


class InvalidOpening(RestaurantError):
    """Opening hours that cannot be kept as given."""


@dataclass(frozen=True)
class MenuLine:
    """An item on a restaurant's menu."""

    item_id: str
    restaurant_id: str
    prep_minutes: float
    available: bool = True


@dataclass(frozen=True)
class Kitchen:
    """A restaurant as its staff run it: where it is, when it is open, how much it takes on."""

    restaurant_id: str
    name: str
    lat: float
    lon: float
    timezone: str
    opens_at: time
    closes_at: time
    accepting: bool
    capacity: int

    def open_at(self, now: datetime) -> bool:
        """Within its hours (local time) at `now` (aware), and taking orders."""
        return self.accepting and within_hours(
            self.opens_at, self.closes_at, now.astimezone(_zone(self.timezone)).time()
        )

    def with_opening(
        self, accepting: bool | None, opens_at: time | None, closes_at: time | None
    ) -> Kitchen:
        """The staff pause or resume (`accepting`), or change the hours (both times, local,
        without an offset); what is not given stays."""
        if (opens_at is None) != (closes_at is None):
            raise InvalidOpening("give both opens_at and closes_at to change the hours")
        changed = replace(self, accepting=self.accepting if accepting is None else accepting)
        if opens_at is None or closes_at is None:
            return changed
        if opens_at.tzinfo is not None or closes_at.tzinfo is not None:
            raise InvalidOpening(
                f"hours are local to the restaurant ({self.timezone}): give them without an offset"
            )
        return replace(changed, opens_at=opens_at, closes_at=closes_at)


def within_hours(opens_at: time, closes_at: time, local: time) -> bool:
    """Equal times: open all day; closing before opening: open past midnight."""
    if opens_at == closes_at:
        return True
    if opens_at < closes_at:
        return opens_at <= local < closes_at
    return local >= opens_at or local < closes_at


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # A zone this machine does not know: UTC rather than a kitchen that cannot answer.
        return ZoneInfo("UTC")


@dataclass(frozen=True)
class TicketLine:
    item_id: str
    quantity: int


@dataclass(frozen=True)
class Ticket:
    """One order at one kitchen; every step returns the ticket as it is afterwards."""

    order_id: UUID
    restaurant_id: str
    state: TicketState
    lines: tuple[TicketLine, ...]
    ready_by: datetime | None = None
    reason: str | None = None
    detail: str | None = None
    # As recorded (by the repository); the steps leave them to it.
    received_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def pending(cls, order_id: UUID, restaurant_id: str, lines: Iterable[TicketLine]) -> Ticket:
        """A confirmed order the kitchen has not answered yet."""
        return cls(order_id, restaurant_id, TicketState.PENDING, tuple(lines))

    def accept(self, ready_by: datetime) -> Ticket:
        """PENDING -> ACCEPTED, to be ready by `ready_by`; ACCEPTED stays (with its time)."""
        if self.state is TicketState.ACCEPTED:
            return self
        self._require({TicketState.PENDING}, "accepted")
        return replace(self, state=TicketState.ACCEPTED, ready_by=ready_by)

    def prepare(self) -> Ticket:
        """ACCEPTED -> PREPARING; PREPARING stays."""
        if self.state is TicketState.PREPARING:
            return self
        self._require({TicketState.ACCEPTED}, "prepared")
        return replace(self, state=TicketState.PREPARING)

    def delay(self, ready_by: datetime) -> Ticket:
        """ACCEPTED or PREPARING -> PREPARING, ready by the new `ready_by`."""
        self._require({TicketState.ACCEPTED, TicketState.PREPARING}, "delayed")
        return replace(self, state=TicketState.PREPARING, ready_by=ready_by)

    def ready(self) -> Ticket:
        """ACCEPTED or PREPARING -> READY; READY stays."""
        if self.state is TicketState.READY:
            return self
        self._require({TicketState.ACCEPTED, TicketState.PREPARING}, "ready")
        return replace(self, state=TicketState.READY)

    def reject(self, reason: FailureReason, detail: str | None = None) -> Ticket:
        """PENDING -> REJECTED for `reason`; REJECTED stays (with its first reason)."""
        if self.state is TicketState.REJECTED:
            return self
        self._require({TicketState.PENDING}, "rejected")
        return replace(self, state=TicketState.REJECTED, reason=reason.value, detail=detail)

    def close(self, state: TicketState) -> Ticket:
        """The order was cancelled (`CANCELLED`) or collected (`PICKED_UP`): an open ticket
        takes that state; a closed one keeps its own (a rejected order is cancelled after)."""
        if self.state in CLOSED:
            return self
        return replace(self, state=state)

    def follow(self, order: OrderSnapshot) -> Ticket:
        """The ticket as its order says it is: for a ticket left behind by its order (a crash
        between moving the order and recording the ticket, an event missed)."""
        state = ticket_state_of(order.status, [change.status for change in order.history])
        if state is None or state is self.state:
            return self
        if state is TicketState.REJECTED:
            reason = order.reason.value if order.reason is not None else None
            return replace(self, state=state, reason=reason, detail=order.detail)
        ready = order.kitchen.ready_by if order.kitchen is not None else self.ready_by
        return replace(self, state=state, ready_by=ready)

    def _require(self, sources: set[TicketState], what: str) -> None:
        if self.state not in sources:
            raise TicketConflict(
                f"order {self.order_id} is {self.state.value.lower()} at the kitchen;"
                f" it cannot be {what}"
            )


# The kitchen's step each order status means, for `Ticket.follow`.
_KITCHEN_STEP = {
    OrderStatus.RESTAURANT_ACCEPTED: TicketState.ACCEPTED,
    OrderStatus.PREPARING: TicketState.PREPARING,
    OrderStatus.READY_FOR_PICKUP: TicketState.READY,
    OrderStatus.RESTAURANT_REJECTED: TicketState.REJECTED,
}
_AFTER_KITCHEN = {
    OrderStatus.PICKED_UP: TicketState.PICKED_UP,
    OrderStatus.DELIVERED: TicketState.PICKED_UP,
    OrderStatus.CANCELLED: TicketState.CANCELLED,
    OrderStatus.FAILED: TicketState.CANCELLED,
}


def ticket_state_of(order: OrderStatus, history: Sequence[OrderStatus]) -> TicketState | None:
    """The ticket state an order's status and timeline imply: collected or cancelled once the
    order is, else its latest kitchen step; None when the kitchen has not answered yet."""
    if order in _AFTER_KITCHEN:
        return _AFTER_KITCHEN[order]
    for status in (order, *reversed(history)):
        if status in _KITCHEN_STEP:
            return _KITCHEN_STEP[status]
    return None


def choose_restaurant(item_ids: Iterable[str], menu: Mapping[str, MenuLine]) -> str:
    """The restaurant of the order's first item (by id) that is on a menu, else the default
    kitchen."""
    for item_id in sorted(item_ids):
        if item_id in menu:
            return menu[item_id].restaurant_id
    return DEFAULT_RESTAURANT


def unavailable_items(item_ids: Iterable[str], menu: Mapping[str, MenuLine]) -> list[str]:
    """The order's items a kitchen has marked unavailable, by id."""
    return sorted({i for i in item_ids if i in menu and not menu[i].available})


def intake_refusal(
    kitchen: Kitchen, now: datetime, unavailable: Sequence[str], active_tickets: int
) -> FailureReason | None:
    """Why a confirmed order is rejected at once, if it is: the restaurant is closed, an item
    is unavailable, or the kitchen already has its capacity of orders on the go."""
    if not kitchen.open_at(now):
        return FailureReason.RESTAURANT_CLOSED
    if unavailable:
        return FailureReason.ITEM_UNAVAILABLE
    if active_tickets >= kitchen.capacity:
        return FailureReason.KITCHEN_BUSY
    return None


def refusal_detail(reason: FailureReason, kitchen: Kitchen, unavailable: Sequence[str]) -> str:
    """What the customer is told about an order rejected at once."""
    if reason is FailureReason.RESTAURANT_CLOSED:
        return f"{kitchen.name} is closed"
    if reason is FailureReason.ITEM_UNAVAILABLE:
        return f"{kitchen.name} cannot make {', '.join(unavailable)} now"
    if reason is FailureReason.KITCHEN_BUSY:
        return f"{kitchen.name} has {kitchen.capacity} orders on the go; no room for another"
    return f"{kitchen.name} cannot take the order"


def suggested_ready_in(
    lines: Sequence[TicketLine], menu: Mapping[str, MenuLine], active: int, capacity: int
) -> float:
    """Minutes the kitchen could promise: its slowest dish (dishes are cooked side by side),
    plus a queue term: that much again for a full kitchen (`active` of `capacity` on the go),
    in proportion below. Rounded up to a half minute, at most MAX_READY_IN_MINUTES."""
    if not lines:
        return DEFAULT_PREP_MINUTES
    slowest = max(
        (menu[li.item_id].prep_minutes if li.item_id in menu else DEFAULT_PREP_MINUTES)
        for li in lines
    )
    queue = slowest * max(active, 0) / max(capacity, 1)
    return min(math.ceil((slowest + queue) * 2) / 2, MAX_READY_IN_MINUTES)


def ready_by(now: datetime, minutes: float) -> datetime:
    return now + timedelta(minutes=minutes)
