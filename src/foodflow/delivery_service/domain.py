"""Deliveries, courier choice, distances and ETAs. Pure: standard library only.

A delivery belongs to one confirmed order and moves WAITING -> ASSIGNED -> PICKED_UP ->
DELIVERED. Before pickup it can be cancelled: WAITING or ASSIGNED -> CANCELLING (refund, stock
and courier are being given back, resumable after a crash) -> CANCELLED. A waiting delivery
whose order moved on without it (cancelled elsewhere, expired) is abandoned: -> CANCELLED.
Asking for the state a delivery is already in changes nothing, so retried steps are harmless.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

EARTH_RADIUS_KM = 6371.0088
# Minutes a courier spends at the restaurant and at the door, on top of riding.
HANDOVER_MINUTES = 4


class DeliveryState(StrEnum):
    WAITING = "WAITING"  # confirmed, no courier free yet
    ASSIGNED = "ASSIGNED"
    PICKED_UP = "PICKED_UP"
    DELIVERED = "DELIVERED"
    CANCELLING = "CANCELLING"  # compensation started (refund, stock, courier); resumable
    CANCELLED = "CANCELLED"


CANCELLABLE = frozenset({DeliveryState.WAITING, DeliveryState.ASSIGNED})


class DeliveryError(Exception):
    """A request the delivery service cannot carry out; the message is meant for the caller."""


class DeliveryNotFound(DeliveryError):
    pass


class DeliveryConflict(DeliveryError):
    """The delivery is in a state the requested step cannot leave from."""


class WrongCourier(DeliveryError):
    """A courier reported a step of a delivery they do not carry."""


@dataclass(frozen=True)
class Point:
    lat: float
    lon: float


@dataclass(frozen=True)
class Courier:
    courier_id: str
    position: Point
    available: bool = True
    name: str = ""


@dataclass(frozen=True)
class Route:
    distance_km: float
    eta_minutes: int


@dataclass(frozen=True)
class Delivery:
    """One order's delivery; every transition returns the delivery as it is afterwards."""

    order_id: UUID
    user_id: str
    state: DeliveryState
    restaurant_id: str
    address: str
    dropoff: Point
    courier_id: str | None = None
    distance_km: float | None = None
    eta_minutes: int | None = None
    cancel_reason: str | None = None

    @classmethod
    def waiting(
        cls, order_id: UUID, user_id: str, restaurant_id: str, address: str, dropoff: Point
    ) -> Delivery:
        """A confirmed order's delivery, waiting for a courier."""
        return cls(order_id, user_id, DeliveryState.WAITING, restaurant_id, address, dropoff)

    def assign(self, courier_id: str, route: Route) -> Delivery:
        """WAITING -> ASSIGNED to `courier_id`, who rides `route`."""
        self._require(DeliveryState.WAITING, "assigned")
        return replace(
            self,
            state=DeliveryState.ASSIGNED,
            courier_id=courier_id,
            distance_km=route.distance_km,
            eta_minutes=route.eta_minutes,
        )

    def pick_up(self, courier_id: str | None) -> Delivery:
        """ASSIGNED -> PICKED_UP; PICKED_UP stays. `courier_id`, when given, must be the
        assigned courier (`WrongCourier` otherwise, whatever the state)."""
        return self._courier_step(courier_id, DeliveryState.ASSIGNED, DeliveryState.PICKED_UP)

    def deliver(self, courier_id: str | None) -> Delivery:
        """PICKED_UP -> DELIVERED; DELIVERED stays. `courier_id` as for `pick_up`."""
        return self._courier_step(courier_id, DeliveryState.PICKED_UP, DeliveryState.DELIVERED)

    def start_cancel(self, reason: str) -> Delivery:
        """WAITING or ASSIGNED -> CANCELLING for `reason`; CANCELLING (with its first reason)
        and CANCELLED stay; once picked up it is too late."""
        if self.state in (DeliveryState.CANCELLING, DeliveryState.CANCELLED):
            return self
        if self.state not in CANCELLABLE:
            raise DeliveryConflict(
                f"order {self.order_id} is {self.state.value.replace('_', ' ').lower()};"
                " it can no longer be cancelled"
            )
        return replace(self, state=DeliveryState.CANCELLING, cancel_reason=reason)

    def finish_cancel(self) -> Delivery:
        """CANCELLING -> CANCELLED, once everything is given back; CANCELLED stays."""
        if self.state is DeliveryState.CANCELLED:
            return self
        self._require(DeliveryState.CANCELLING, "cancelled")
        return replace(self, state=DeliveryState.CANCELLED)

    def abandon(self, reason: str) -> Delivery:
        """WAITING -> CANCELLED for `reason`: the order moved on without its delivery, and
        there is nothing to give back."""
        self._require(DeliveryState.WAITING, "abandoned")
        return replace(self, state=DeliveryState.CANCELLED, cancel_reason=reason)

    def _courier_step(
        self, courier_id: str | None, source: DeliveryState, target: DeliveryState
    ) -> Delivery:
        if courier_id is not None and self.courier_id != courier_id:
            raise WrongCourier(f"order {self.order_id} is not assigned to {courier_id}")
        if self.state is target:
            return self
        if self.state is not source:
            raise DeliveryConflict(f"order {self.order_id} is {self.state}; it cannot be {target}")
        return replace(self, state=target)

    def _require(self, source: DeliveryState, what: str) -> None:
        if self.state is not source:
            raise DeliveryConflict(f"order {self.order_id} is {self.state}; it cannot be {what}")


def distance_km(a: Point, b: Point) -> float:
    """Great-circle (haversine) distance between two points."""
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dphi, dlam = phi2 - phi1, math.radians(b.lon - a.lon)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def choose_courier(pickup: Point, couriers: Iterable[Courier]) -> Courier | None:
    """The available courier nearest to the pickup point (ties: lowest id); None if none free."""
    free = [c for c in couriers if c.available]
    if not free:
        return None
    return min(free, key=lambda c: (distance_km(c.position, pickup), c.courier_id))


def plan_route(courier: Point, pickup: Point, dropoff: Point, speed_kmh: float) -> Route:
    """Courier → restaurant → customer, at `speed_kmh`, plus the handovers, rounded up."""
    km = distance_km(courier, pickup) + distance_km(pickup, dropoff)
    minutes = math.ceil(km / speed_kmh * 60) + HANDOVER_MINUTES
    return Route(distance_km=round(km, 2), eta_minutes=minutes)


def waited_too_long(waiting_since: datetime, now: datetime, limit_seconds: float) -> bool:
    return now - waiting_since > timedelta(seconds=limit_seconds)
