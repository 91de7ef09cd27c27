"""Bodies of the delivery service's endpoints."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from foodflow.contracts.text import Text


class CourierStep(BaseModel):
    """A step reported for an order's delivery. With `courier_id` (the gateway sends it for a
    courier's account) it must be the courier carrying the order, else 403; without, it is
    reported by staff."""

    courier_id: Text | None = Field(default=None, min_length=1, max_length=64)


class CancelDelivery(BaseModel):
    """A cancellation asked for over HTTP. The restaurant's reasons are not among them: a
    rejected order is cancelled by the delivery service itself, from the rejection event."""

    reason: Literal["CUSTOMER_CANCELLED", "NO_COURIER"] = "CUSTOMER_CANCELLED"


class DeliveryView(BaseModel):
    """A delivery as the service keeps it. The restaurant (`restaurant_id`, its name) and
    `ready_by` are known once a restaurant accepts the order (None before); `food_ready` once
    the kitchen says so; `arrived_at` once the courier reports being at the restaurant;
    `eta_minutes` counts from the courier's assignment to the customer's door."""

    order_id: UUID
    user_id: str
    state: str
    restaurant_id: str | None = None
    restaurant_name: str | None = None
    ready_by: datetime | None = None
    food_ready: bool = False
    arrived_at: datetime | None = None
    address: str
    courier_id: str | None = None
    courier_name: str | None = None
    distance_km: Decimal | None = None
    eta_minutes: int | None = None
    cancel_reason: str | None = None
    waiting_since: datetime
    updated_at: datetime


class CourierView(BaseModel):
    courier_id: str
    name: str
    lat: float
    lon: float
    available: bool
    current_order: UUID | None = None


class GeoPoint(BaseModel):
    """A point on the map, in degrees."""

    lat: float
    lon: float


class CarriedDelivery(BaseModel):
    """The delivery a courier carries now, with the two stops of its route: when the kitchen
    says the food will be ready, whether it is (pickup is refused before), and when the courier
    reported being at the restaurant."""

    order_id: UUID
    state: Literal["ASSIGNED", "PICKED_UP"]
    restaurant_id: str
    restaurant_name: str
    pickup: GeoPoint
    ready_by: datetime | None = None
    food_ready: bool = False
    arrived_at: datetime | None = None
    address: str
    dropoff: GeoPoint
    distance_km: Decimal | None = None
    eta_minutes: int | None = None


class CourierAssignment(BaseModel):
    """A courier, where they are (where their last delivery ended) and what they carry."""

    courier_id: str
    name: str
    position: GeoPoint
    available: bool
    delivery: CarriedDelivery | None = None
