"""Deliveries, courier choice, dispatch timing, distances and ETAs. Pure: standard library only.

A delivery belongs to one confirmed order and moves WAITING -> ASSIGNED -> PICKED_UP ->
DELIVERED. It is taken in when the order is confirmed, before any restaurant has answered; the
restaurant's kitchen plan (where to collect the food, and when it will be ready) comes later,
may be moved by a delay, and the kitchen says when the food is ready. A courier is sent so as to
reach the restaurant when the food is ready (`dispatch_at`), reports arriving there, and may
pick the food up only once it is ready.

Before pickup it can be cancelled: WAITING or ASSIGNED -> CANCELLING (refund, stock and
courier are being given back, resumable after a crash) -> CANCELLED. A waiting delivery whose
order moved on without it (cancelled elsewhere, expired) is abandoned: -> CANCELLED. Asking for
the state a delivery is already in changes nothing, so retried steps are harmless.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

EARTH_RADIUS_KM = 6371.0088
# Time a courier spends at the restaurant and at the door, on top of riding and waiting.
HANDOVER_MINUTES = 4
HANDOVER = timedelta(minutes=HANDOVER_MINUTES)


class DeliveryState(StrEnum):
    WAITING = "WAITING"  # confirmed, no courier sent yet (the food is not due, or none is free)
    ASSIGNED = "ASSIGNED"
    PICKED_UP = "PICKED_UP"
    DELIVERED = "DELIVERED"
    CANCELLING = "CANCELLING"  # compensation started (refund, stock, courier); resumable
    CANCELLED = "CANCELLED"


CANCELLABLE = frozenset({DeliveryState.WAITING, DeliveryState.ASSIGNED})
# Before pickup: what the kitchen says (a new plan, the food ready) still matters.
BEFORE_PICKUP = CANCELLABLE


class DeliveryError(Exception):
    """A request the delivery service cannot carry out; the message is meant for the caller."""


class DeliveryNotFound(DeliveryError):
    pass


class DeliveryConflict(DeliveryError):
    """The delivery is in a state the requested step cannot leave from."""


class FoodNotReady(DeliveryConflict):
    """A courier tried to pick up food the kitchen has not reported ready."""


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
class Kitchen:
    """The restaurant cooking an order: where the courier collects it, and when the kitchen
    says it will be ready."""

    restaurant_id: str
    name: str
    pickup: Point
    ready_by: datetime


@dataclass(frozen=True)
class Delivery:
    """One order's delivery; every transition returns the delivery as it is afterwards.

    `kitchen` is None until a restaurant accepts the order. Once assigned, `assigned_at` and
    `courier_due_at` (when the courier reaches the restaurant riding at the planned speed) keep
    the ETA right when the kitchen moves its ready-by time; `eta_minutes` counts from
    `assigned_at` to the customer's door.
    """

    order_id: UUID
    user_id: str
    state: DeliveryState
    address: str
    dropoff: Point
    kitchen: Kitchen | None = None
    food_ready: bool = False
    courier_id: str | None = None
    distance_km: float | None = None
    eta_minutes: int | None = None
    assigned_at: datetime | None = None
    courier_due_at: datetime | None = None
    arrived_at: datetime | None = None
    cancel_reason: str | None = None

    @classmethod
    def waiting(
        cls,
        order_id: UUID,
        user_id: str,
        address: str,
        dropoff: Point,
        kitchen: Kitchen | None = None,
    ) -> Delivery:
        """A confirmed order's delivery, waiting for its kitchen plan (or with it) and then a
        courier."""
        return cls(order_id, user_id, DeliveryState.WAITING, address, dropoff, kitchen)

    @property
    def restaurant_id(self) -> str | None:
        return self.kitchen.restaurant_id if self.kitchen is not None else None

    def plan(self, kitchen: Kitchen, speed_kmh: float) -> Delivery:
        """The kitchen's plan, new or moved (a delay): a waiting delivery takes it (and so its
        dispatch time moves); an assigned one's ETA moves with the ready-by time. After
        pickup, and once cancelled, the kitchen no longer matters: unchanged."""
        if self.state not in BEFORE_PICKUP or kitchen == self.kitchen:
            return self
        planned = replace(self, kitchen=kitchen)
        if self.state is DeliveryState.ASSIGNED:
            return replace(planned, eta_minutes=planned._eta_minutes(speed_kmh))
        return planned

    def food_is_ready(self) -> Delivery:
        """The kitchen reported the food ready; before pickup only (after, it is moot)."""
        if self.food_ready or self.state not in BEFORE_PICKUP:
            return self
        return replace(self, food_ready=True)

    def assign(self, courier: Courier, now: datetime, speed_kmh: float) -> Delivery:
        """WAITING -> ASSIGNED to `courier`, who rides from where they are to the restaurant
        (due there at `now` + the ride), waits for the food if it is not ready by then, and
        rides on to the customer."""
        self._require(DeliveryState.WAITING, "assigned")
        kitchen = self._planned()
        assigned = replace(
            self,
            state=DeliveryState.ASSIGNED,
            courier_id=courier.courier_id,
            distance_km=round(
                distance_km(courier.position, kitchen.pickup)
                + distance_km(kitchen.pickup, self.dropoff),
                2,
            ),
            assigned_at=now,
            courier_due_at=now + ride(courier.position, kitchen.pickup, speed_kmh),
        )
        return replace(assigned, eta_minutes=assigned._eta_minutes(speed_kmh))

    def arrive(self, courier_id: str | None, now: datetime, speed_kmh: float) -> Delivery:
        """The courier is at the restaurant: `arrived_at` recorded once, and the ETA counts
        from the real arrival. Only while ASSIGNED; once recorded it stays (a retried step).
        `courier_id`, when given, must be the assigned courier (`WrongCourier` otherwise)."""
        self._check_courier(courier_id)
        if self.arrived_at is not None:
            return self
        self._require(DeliveryState.ASSIGNED, "reported at the restaurant")
        arrived = replace(self, arrived_at=now)
        return replace(arrived, eta_minutes=arrived._eta_minutes(speed_kmh))

    def pick_up(self, courier_id: str | None) -> Delivery:
        """ASSIGNED -> PICKED_UP, once the food is ready (`FoodNotReady` before); PICKED_UP
        stays. `courier_id`, when given, must be the assigned courier (`WrongCourier`
        otherwise, whatever the state)."""
        self._check_courier(courier_id)
        if self.state is DeliveryState.ASSIGNED and not self.food_ready:
            raise FoodNotReady(f"order {self.order_id}: the food is not ready yet")
        return self._courier_step(DeliveryState.ASSIGNED, DeliveryState.PICKED_UP)

    def deliver(self, courier_id: str | None) -> Delivery:
        """PICKED_UP -> DELIVERED; DELIVERED stays. `courier_id` as for `pick_up`."""
        self._check_courier(courier_id)
        return self._courier_step(DeliveryState.PICKED_UP, DeliveryState.DELIVERED)

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

    def _eta_minutes(self, speed_kmh: float) -> int | None:
        """Minutes from the assignment to the door, as the plan stands now; the ETA as it was
        for a delivery assigned before its trip was recorded (one from before kitchens)."""
        if self.kitchen is None or self.assigned_at is None or self.courier_due_at is None:
            return self.eta_minutes
        at_restaurant = self.arrived_at or self.courier_due_at
        to_customer = ride(self.kitchen.pickup, self.dropoff, speed_kmh)
        door = eta(self.kitchen.ready_by, at_restaurant, to_customer)
        return math.ceil((door - self.assigned_at) / timedelta(minutes=1))

    def _planned(self) -> Kitchen:
        if self.kitchen is None:
            raise DeliveryConflict(f"order {self.order_id} has no restaurant yet")
        return self.kitchen

    def _check_courier(self, courier_id: str | None) -> None:
        if courier_id is not None and self.courier_id != courier_id:
            raise WrongCourier(f"order {self.order_id} is not assigned to {courier_id}")

    def _courier_step(self, source: DeliveryState, target: DeliveryState) -> Delivery:
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


def ride(a: Point, b: Point, speed_kmh: float) -> timedelta:
    """How long riding from `a` to `b` takes at `speed_kmh`."""
    return timedelta(hours=distance_km(a, b) / speed_kmh)


def choose_courier(pickup: Point, couriers: Iterable[Courier]) -> Courier | None:
    """The available courier nearest to the pickup point (ties: lowest id); None if none free."""
    free = [c for c in couriers if c.available]
    if not free:
        return None
    return min(free, key=lambda c: (distance_km(c.position, pickup), c.courier_id))


def dispatch_at(ready_by: datetime, to_restaurant: timedelta, tolerance: timedelta) -> datetime:
    """When to send a courier `to_restaurant` away from the restaurant: so that they get there
    when the food is ready, at most `tolerance` early (a courier waiting at the counter is a
    courier not carrying anything else)."""
    return ready_by - to_restaurant - tolerance


def eta(ready_by: datetime, at_restaurant: datetime, to_customer: timedelta) -> datetime:
    """When the food reaches the customer: the courier leaves the restaurant once both they
    and the food are there, rides `to_customer`, and hands over."""
    return max(ready_by, at_restaurant) + to_customer + HANDOVER


def waited_too_long(waiting_since: datetime, now: datetime, limit_seconds: float) -> bool:
    return now - waiting_since > timedelta(seconds=limit_seconds)
