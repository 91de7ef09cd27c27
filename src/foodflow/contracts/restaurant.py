"""Bodies of the restaurant service's endpoints: restaurants, their menus and opening, and the
kitchen tickets (one per order a restaurant cooks).

A ticket moves PENDING (the restaurant has not answered) -> ACCEPTED (with a ready-by time) ->
PREPARING -> READY -> PICKED_UP, or PENDING -> REJECTED (a reason: closed, out of an item, too
busy; or RESTAURANT_TIMEOUT when nobody answered in time), or any state before PICKED_UP ->
CANCELLED (the order was cancelled). Each ticket step is also a step of the order
(`OrderStatus.RESTAURANT_ACCEPTED`, `PREPARING`, `READY_FOR_PICKUP`, `RESTAURANT_REJECTED`).
"""

from __future__ import annotations

from datetime import datetime, time
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field, PlainSerializer, WithJsonSchema

from foodflow.contracts.inventory import ItemId
from foodflow.contracts.text import Text

# A local wall-clock time of a restaurant's hours ("HH:MM", in its `timezone`). Not an RFC 3339
# time: those carry an offset, and an opening hour is local (it moves with summer time).
LocalTime = Annotated[
    time,
    PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
            "description": "a local wall-clock time, HH:MM, in the restaurant's time zone",
        }
    ),
]
RestaurantId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")]
# How far ahead a kitchen may promise (or move) its ready-by time.
MAX_READY_IN_MINUTES = 240.0


class TicketState(StrEnum):
    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    PREPARING = "PREPARING"
    READY = "READY"
    PICKED_UP = "PICKED_UP"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"


# The reasons a restaurant's staff may give (RESTAURANT_TIMEOUT is the service's own).
RejectReason = Literal["RESTAURANT_CLOSED", "ITEM_UNAVAILABLE", "KITCHEN_BUSY"]


class MenuEntry(BaseModel):
    """An item a restaurant cooks: how long it takes, and whether it can be ordered now."""

    item_id: ItemId
    prep_minutes: float = Field(ge=0, le=MAX_READY_IN_MINUTES)
    available: bool = True


class RestaurantView(BaseModel):
    """A restaurant, its opening and its menu. `open_now` is the hours (in `timezone`) and the
    staff's `accepting` switch together: an order for a restaurant that is not open now is
    refused before payment."""

    restaurant_id: RestaurantId
    name: str
    lat: float
    lon: float
    timezone: str
    opens_at: LocalTime
    closes_at: LocalTime  # equal to opens_at: open all day; earlier: open past midnight
    accepting: bool
    open_now: bool
    capacity: int  # tickets the kitchen takes at once (ACCEPTED or PREPARING)
    active_tickets: int
    items: list[MenuEntry]


class OrderCheck(BaseModel):
    """`POST /check_order`: can the restaurant that would cook these items take an order now?"""

    item_ids: list[ItemId] = Field(min_length=1, max_length=50)


class OrderCheckResult(BaseModel):
    restaurant_id: str
    restaurant_name: str
    open_now: bool
    # Items of the order the restaurant marked unavailable.
    unavailable: list[str] = Field(default_factory=list)
    # Why it would be refused, when it would: RESTAURANT_CLOSED or ITEM_UNAVAILABLE.
    refusal: str | None = None


class TicketLine(BaseModel):
    item_id: str
    quantity: int


class TicketView(BaseModel):
    order_id: UUID
    restaurant_id: str
    state: TicketState
    lines: list[TicketLine]
    # What the kitchen would promise for these lines now (its prep times and its queue).
    suggested_ready_in_minutes: float
    ready_by: datetime | None = None
    reason: str | None = None
    received_at: datetime
    updated_at: datetime


class AcceptTicket(BaseModel):
    """Accept an order, to be ready in `ready_in_minutes` (0: now)."""

    ready_in_minutes: float = Field(ge=0, le=MAX_READY_IN_MINUTES, allow_inf_nan=False)


class RejectTicket(BaseModel):
    reason: RejectReason
    detail: Text | None = Field(default=None, max_length=200)


class DelayTicket(BaseModel):
    """The kitchen needs longer: the food is now ready in `ready_in_minutes` from now."""

    ready_in_minutes: float = Field(ge=0, le=MAX_READY_IN_MINUTES, allow_inf_nan=False)


class ItemAvailability(BaseModel):
    available: bool


class OpeningChange(BaseModel):
    """Staff pause or resume taking orders; hours change with both times given."""

    accepting: bool | None = None
    opens_at: LocalTime | None = None
    closes_at: LocalTime | None = None


class Tickets(BaseModel):
    tickets: list[TicketView]


class Restaurants(BaseModel):
    restaurants: list[RestaurantView]
