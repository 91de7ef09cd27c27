"""Courier choice, distances and ETAs. Pure: standard library only."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

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


@dataclass(frozen=True)
class Point:
    lat: float
    lon: float


@dataclass(frozen=True)
class Courier:
    courier_id: str
    position: Point
    available: bool = True


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


@dataclass(frozen=True)
class Route:
    distance_km: float
    eta_minutes: int


def plan_route(courier: Point, pickup: Point, dropoff: Point, speed_kmh: float) -> Route:
    """Courier → restaurant → customer, at `speed_kmh`, plus the handovers, rounded up."""
    km = distance_km(courier, pickup) + distance_km(pickup, dropoff)
    minutes = math.ceil(km / speed_kmh * 60) + HANDOVER_MINUTES
    return Route(distance_km=round(km, 2), eta_minutes=minutes)


def waited_too_long(waiting_since: datetime, now: datetime, limit_seconds: float) -> bool:
    return now - waiting_since > timedelta(seconds=limit_seconds)
