"""PostgreSQL adapter of the delivery service: every query on couriers and deliveries.

Every query is parameterised. A unit of work is one transaction on one pooled connection:
it commits only when `commit()` is called and rolls back otherwise. Reads, and the intake of a
new delivery (one statement), run on the pool without one.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from foodflow.contracts.delivery import (
    CarriedDelivery,
    CourierAssignment,
    CourierView,
    DeliveryView,
    GeoPoint,
)
from foodflow.delivery_service.domain import Courier, Delivery, DeliveryState, Kitchen, Point
from foodflow.platform.db.unit_of_work import PostgresTransaction, transaction_slots

_DELIVERY_COLUMNS = (
    "d.order_id, d.user_id, d.state, d.restaurant_id, d.restaurant_name, d.pickup_lat,"
    " d.pickup_lon, d.ready_by, d.food_ready, d.address, d.lat, d.lon, d.courier_id,"
    " d.distance_km, d.eta_minutes, d.assigned_at, d.courier_due_at, d.arrived_at,"
    " d.cancel_reason"
)


def _kitchen(row: asyncpg.Record) -> Kitchen | None:
    planned = ("restaurant_id", "restaurant_name", "pickup_lat", "pickup_lon", "ready_by")
    if any(row[column] is None for column in planned):
        return None
    return Kitchen(
        restaurant_id=row["restaurant_id"],
        name=row["restaurant_name"],
        pickup=Point(row["pickup_lat"], row["pickup_lon"]),
        ready_by=row["ready_by"],
    )


def _delivery(row: asyncpg.Record) -> Delivery:
    distance = row["distance_km"]
    return Delivery(
        order_id=row["order_id"],
        user_id=row["user_id"],
        state=DeliveryState(row["state"]),
        address=row["address"],
        dropoff=Point(row["lat"], row["lon"]),
        kitchen=_kitchen(row),
        food_ready=row["food_ready"],
        courier_id=row["courier_id"],
        distance_km=float(distance) if distance is not None else None,
        eta_minutes=row["eta_minutes"],
        assigned_at=row["assigned_at"],
        courier_due_at=row["courier_due_at"],
        arrived_at=row["arrived_at"],
        cancel_reason=row["cancel_reason"],
    )


def _courier(row: asyncpg.Record) -> Courier:
    return Courier(row["courier_id"], Point(row["lat"], row["lon"]), name=row["name"])


def _kitchen_values(delivery: Delivery) -> tuple[object, ...]:
    kitchen = delivery.kitchen
    if kitchen is None:
        return None, None, None, None, None
    return (
        kitchen.restaurant_id,
        kitchen.name,
        kitchen.pickup.lat,
        kitchen.pickup.lon,
        kitchen.ready_by,
    )


class PostgresUnitOfWork(PostgresTransaction):
    """One transaction: `async with uow: ... await uow.commit()`."""

    async def get(self, order_id: UUID) -> Delivery | None:
        """The order's delivery, row-locked until this transaction ends."""
        row = await self.connection.fetchrow(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d WHERE d.order_id = $1 FOR UPDATE",
            order_id,
        )
        return _delivery(row) if row is not None else None

    async def free_couriers(self) -> list[Courier]:
        """Available couriers that no other transaction holds, row-locked, by id."""
        rows = await self.connection.fetch(
            "SELECT courier_id, name, lat, lon FROM couriers WHERE available"
            " ORDER BY courier_id FOR UPDATE SKIP LOCKED"
        )
        return [_courier(r) for r in rows]

    async def save(self, delivery: Delivery) -> None:
        await self.connection.execute(
            "UPDATE deliveries SET state = $2, restaurant_id = $3, restaurant_name = $4,"
            " pickup_lat = $5, pickup_lon = $6, ready_by = $7, food_ready = $8,"
            " courier_id = $9, distance_km = $10, eta_minutes = $11, assigned_at = $12,"
            " courier_due_at = $13, arrived_at = $14, cancel_reason = $15, updated_at = now()"
            " WHERE order_id = $1",
            delivery.order_id,
            delivery.state.value,
            *_kitchen_values(delivery),
            delivery.food_ready,
            delivery.courier_id,
            delivery.distance_km,
            delivery.eta_minutes,
            delivery.assigned_at,
            delivery.courier_due_at,
            delivery.arrived_at,
            delivery.cancel_reason,
        )

    async def take_courier(self, courier_id: str, order_id: UUID) -> None:
        await self.connection.execute(
            "UPDATE couriers SET available = false, current_order = $2, updated_at = now()"
            " WHERE courier_id = $1",
            courier_id,
            order_id,
        )

    async def free_courier(self, courier_id: str, at: Point) -> None:
        """The courier is free again, at `at` (where the last delivery ended)."""
        await self.connection.execute(
            "UPDATE couriers SET available = true, current_order = NULL, lat = $2, lon = $3,"
            " updated_at = now() WHERE courier_id = $1",
            courier_id,
            at.lat,
            at.lon,
        )

    async def free_courier_of(self, order_id: UUID) -> None:
        """Whoever carries `order_id` (if anyone) is free again, where they are."""
        await self.connection.execute(
            "UPDATE couriers SET available = true, current_order = NULL, updated_at = now()"
            " WHERE current_order = $1",
            order_id,
        )


class DeliveryRepository:
    """Read queries and the intake over the pool, and units of work for changes."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        # A unit of work here moves the order too, on a second connection of the pool.
        self._slots = transaction_slots(pool)

    def unit_of_work(self) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(self._pool, self._slots)

    async def add(self, delivery: Delivery) -> bool:
        """Record a new WAITING delivery; False when the order has one already."""
        status = await self._pool.execute(
            "INSERT INTO deliveries (order_id, user_id, state, restaurant_id, restaurant_name,"
            " pickup_lat, pickup_lon, ready_by, food_ready, address, lat, lon)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            " ON CONFLICT (order_id) DO NOTHING",
            delivery.order_id,
            delivery.user_id,
            delivery.state.value,
            *_kitchen_values(delivery),
            delivery.food_ready,
            delivery.address,
            delivery.dropoff.lat,
            delivery.dropoff.lon,
        )
        return bool(status == "INSERT 0 1")

    async def exists(self, order_id: UUID) -> bool:
        return bool(
            await self._pool.fetchval("SELECT 1 FROM deliveries WHERE order_id = $1", order_id)
        )

    async def waiting_for_courier(self, limit: int) -> list[Delivery]:
        """Up to `limit` waiting deliveries with their kitchen's plan, earliest ready first."""
        rows = await self._pool.fetch(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d WHERE d.state = 'WAITING'"
            " AND d.ready_by IS NOT NULL AND d.pickup_lat IS NOT NULL"
            " ORDER BY d.ready_by LIMIT $1",
            limit,
        )
        return [_delivery(row) for row in rows]

    async def unanswered(self, older_than_seconds: float, limit: int) -> list[UUID]:
        """Up to `limit` waiting deliveries with no kitchen plan for longer than
        `older_than_seconds`, oldest first."""
        rows = await self._pool.fetch(
            "SELECT order_id FROM deliveries WHERE state = 'WAITING' AND ready_by IS NULL"
            " AND waiting_since < now() - make_interval(secs => $1)"
            " ORDER BY waiting_since LIMIT $2",
            older_than_seconds,
            limit,
        )
        return [row["order_id"] for row in rows]

    async def free_couriers(self) -> list[Courier]:
        """Available couriers, by id (no locks: a snapshot)."""
        rows = await self._pool.fetch(
            "SELECT courier_id, name, lat, lon FROM couriers WHERE available ORDER BY courier_id"
        )
        return [_courier(r) for r in rows]

    async def stalled_cancellations(
        self, older_than_seconds: float, limit: int
    ) -> list[tuple[UUID, str]]:
        """Up to `limit` deliveries CANCELLING for longer than `older_than_seconds`, with the
        reason they are cancelled for."""
        rows = await self._pool.fetch(
            "SELECT order_id, cancel_reason FROM deliveries WHERE state = 'CANCELLING'"
            " AND updated_at < now() - make_interval(secs => $1) LIMIT $2",
            older_than_seconds,
            limit,
        )
        return [(row["order_id"], row["cancel_reason"]) for row in rows]

    async def view(self, order_id: UUID) -> DeliveryView | None:
        row = await self._pool.fetchrow(
            "SELECT d.*, c.name AS courier_name FROM deliveries d"
            " LEFT JOIN couriers c USING (courier_id) WHERE d.order_id = $1",
            order_id,
        )
        return DeliveryView.model_validate(dict(row)) if row is not None else None

    async def couriers(self) -> list[CourierView]:
        rows = await self._pool.fetch(
            "SELECT courier_id, name, lat, lon, available, current_order FROM couriers"
            " ORDER BY courier_id"
        )
        return [CourierView.model_validate(dict(r)) for r in rows]

    async def assignment(self, courier_id: str) -> CourierAssignment | None:
        """The courier with the delivery they carry (assigned or picked up), if any."""
        row = await self._pool.fetchrow(
            "SELECT c.courier_id, c.name, c.lat, c.lon, c.available,"
            " d.order_id, d.state, d.restaurant_id, d.restaurant_name, d.pickup_lat,"
            " d.pickup_lon, d.ready_by, d.food_ready, d.arrived_at, d.address,"
            " d.lat AS d_lat, d.lon AS d_lon, d.distance_km, d.eta_minutes"
            " FROM couriers c"
            " LEFT JOIN deliveries d ON d.order_id = c.current_order"
            " AND d.state IN ('ASSIGNED', 'PICKED_UP')"
            " WHERE c.courier_id = $1",
            courier_id,
        )
        if row is None:
            return None
        carried = (
            CarriedDelivery(
                order_id=row["order_id"],
                state=row["state"],
                restaurant_id=row["restaurant_id"],
                restaurant_name=row["restaurant_name"],
                pickup=GeoPoint(lat=row["pickup_lat"], lon=row["pickup_lon"]),
                ready_by=row["ready_by"],
                food_ready=row["food_ready"],
                arrived_at=row["arrived_at"],
                address=row["address"],
                dropoff=GeoPoint(lat=row["d_lat"], lon=row["d_lon"]),
                distance_km=row["distance_km"],
                eta_minutes=row["eta_minutes"],
            )
            if row["order_id"] is not None
            else None
        )
        return CourierAssignment(
            courier_id=row["courier_id"],
            name=row["name"],
            position=GeoPoint(lat=row["lat"], lon=row["lon"]),
            available=row["available"],
            delivery=carried,
        )
