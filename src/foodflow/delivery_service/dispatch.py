"""Delivery use cases over PostgreSQL: take in confirmed orders, assign couriers, pick up,
deliver, cancel (with compensation), and move the order's status accordingly."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from uuid import UUID

import asyncpg

from foodflow.clients.payment import PaymentClient
from foodflow.contracts.delivery import CourierView, DeliveryView
from foodflow.contracts.inventory import OrderRef, ReservationState
from foodflow.contracts.orders import (
    FailureReason,
    OrderFinalEvent,
    OrderSnapshot,
    OrderStatus,
)
from foodflow.contracts.payment import PaymentRequest
from foodflow.delivery_service.domain import (
    CANCELLABLE,
    Courier,
    DeliveryConflict,
    DeliveryNotFound,
    DeliveryState,
    Point,
    choose_courier,
    plan_route,
    waited_too_long,
)
from foodflow.orders.announcer import KafkaAnnouncer
from foodflow.orders.lifecycle import IllegalTransition, advance
from foodflow.orders.status_store import RedisStatusStore, SaveOutcome
from foodflow.platform.config import Settings
from foodflow.platform.errors import ServiceUnavailable
from foodflow.platform.http.client import RequestRefused, ServiceClient

log = logging.getLogger(__name__)
DEFAULT_RESTAURANT = "central-kitchen"
RESUME_CANCELLING_AFTER_SECONDS = 5


class StockClient(ServiceClient):
    """The inventory's `/cancel`: stock of a cancelled order goes back, committed or not."""

    def __init__(self, settings: Settings) -> None:
        super().__init__("inventory", settings.inventory_url, settings)

    async def cancel(self, order_id: UUID) -> ReservationState | None:
        try:
            return await self.post("/cancel", OrderRef(order_id=order_id), ReservationState)
        except RequestRefused as exc:
            if exc.status == 404:
                return None
            raise


class OrderMover:
    """Moves an order that left the saga one step on: Redis (version-guarded), then Kafka."""

    def __init__(self, store: RedisStatusStore, announce: KafkaAnnouncer) -> None:
        self.store = store
        self.announce = announce

    async def move(
        self,
        order_id: UUID,
        target: OrderStatus,
        *,
        reason: FailureReason | None = None,
        detail: str | None = None,
    ) -> OrderSnapshot:
        for _ in range(5):
            current = await self.store.load_snapshot(order_id)
            if current is None:
                raise DeliveryNotFound(f"order {order_id} has no current status")
            if current.status is target:
                return current  # done before: a retried step
            try:
                moved = advance(current, target, reason=reason, detail=detail)
            except IllegalTransition as exc:
                raise DeliveryConflict(str(exc)) from exc
            if await self.store.save(moved) is not SaveOutcome.WRITTEN:
                continue  # another writer got there first: read again and decide again
            final = (
                OrderFinalEvent.model_validate(moved.model_dump())
                if moved.status.persisted
                else None
            )
            await self.announce(moved.status_update(), final)
            log.info("Order %s %s v%d %s", order_id, target, moved.version, detail or "")
            return moved
        raise DeliveryConflict(f"order {order_id} keeps changing; try again")


class Dispatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        mover: OrderMover,
        payment: PaymentClient,
        stock: StockClient,
        settings: Settings,
    ) -> None:
        self.pool = pool
        self.mover = mover
        self.payment = payment
        self.stock = stock
        self.settings = settings

    # --- intake ------------------------------------------------------------------------------

    async def ingest(self, snapshot: OrderSnapshot) -> bool:
        """A confirmed order with an address waits for a courier; True when newly taken in."""
        address = snapshot.delivery_address
        if address is None or snapshot.status is not OrderStatus.CONFIRMED:
            return False
        item_ids = [i.item_id for i in snapshot.items]
        restaurant = await self.pool.fetchval(
            "SELECT restaurant_id FROM restaurant_items WHERE item_id = ANY($1::text[])"
            " ORDER BY item_id LIMIT 1",
            item_ids,
        )
        status = await self.pool.execute(
            "INSERT INTO deliveries (order_id, user_id, state, restaurant_id, address, lat, lon)"
            " VALUES ($1, $2, 'WAITING', $3, $4, $5, $6) ON CONFLICT (order_id) DO NOTHING",
            snapshot.order_id,
            snapshot.user_id,
            restaurant or DEFAULT_RESTAURANT,
            address.address,
            address.lat,
            address.lon,
        )
        taken = status == "INSERT 0 1"
        if taken:
            log.info("Order %s waits for a courier", snapshot.order_id)
        return taken

    # --- the periodic round ------------------------------------------------------------------

    async def dispatch_once(self) -> int:
        """Cancel orders that waited too long, finish interrupted cancellations, then assign
        free couriers to waiting orders, oldest first. Returns how many waiting orders it
        handled (assigned, or dropped because the order moved on)."""
        await self._expire_waiting()
        await self._resume_cancelling()
        assigned = 0
        while await self._assign_one():
            assigned += 1
        return assigned

    async def _expire_waiting(self) -> None:
        rows = await self.pool.fetch(
            "SELECT order_id, waiting_since FROM deliveries WHERE state = 'WAITING'"
            " ORDER BY waiting_since LIMIT 50"
        )
        now = datetime.now(UTC)
        limit = self.settings.courier_wait_limit_seconds
        for row in rows:
            if waited_too_long(row["waiting_since"], now, limit):
                log.warning("Order %s found no courier within %.0fs", row["order_id"], limit)
                try:
                    await self.cancel(row["order_id"], FailureReason.NO_COURIER)
                except DeliveryConflict as exc:
                    log.info("Order %s not cancelled: %s", row["order_id"], exc)

    async def _resume_cancelling(self) -> None:
        rows = await self.pool.fetch(
            "SELECT order_id, cancel_reason FROM deliveries WHERE state = 'CANCELLING'"
            " AND updated_at < now() - make_interval(secs => $1) LIMIT 50",
            RESUME_CANCELLING_AFTER_SECONDS,
        )
        for row in rows:
            await self._compensate(row["order_id"], FailureReason(row["cancel_reason"]))

    async def _assign_one(self) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            waiting = await conn.fetchrow(
                "SELECT d.order_id, d.lat, d.lon, r.lat AS r_lat, r.lon AS r_lon"
                " FROM deliveries d JOIN restaurants r USING (restaurant_id)"
                " WHERE d.state = 'WAITING' ORDER BY d.waiting_since"
                " LIMIT 1 FOR UPDATE OF d SKIP LOCKED"
            )
            if waiting is None:
                return False
            order_id = waiting["order_id"]
            current = await self.mover.store.load_snapshot(order_id)
            if current is None or current.status is not OrderStatus.CONFIRMED:
                # Moved on without us (or expired): drop it, so it cannot block the queue.
                gone = current.status.value if current is not None else "EXPIRED"
                log.warning("Delivery of order %s dropped: the order is %s", order_id, gone)
                await conn.execute(
                    "UPDATE deliveries SET state = 'CANCELLED', cancel_reason = $2,"
                    " updated_at = now() WHERE order_id = $1",
                    order_id,
                    f"ORDER_{gone}",
                )
                return True
            rows = await conn.fetch(
                "SELECT courier_id, name, lat, lon FROM couriers WHERE available"
                " ORDER BY courier_id FOR UPDATE SKIP LOCKED"
            )
            pickup = Point(waiting["r_lat"], waiting["r_lon"])
            courier = choose_courier(
                pickup, [Courier(r["courier_id"], Point(r["lat"], r["lon"])) for r in rows]
            )
            if courier is None:
                return False
            route = plan_route(
                courier.position,
                pickup,
                Point(waiting["lat"], waiting["lon"]),
                self.settings.courier_speed_kmh,
            )
            await conn.execute(
                "UPDATE couriers SET available = false, current_order = $2, updated_at = now()"
                " WHERE courier_id = $1",
                courier.courier_id,
                order_id,
            )
            await conn.execute(
                "UPDATE deliveries SET state = 'ASSIGNED', courier_id = $2, distance_km = $3,"
                " eta_minutes = $4, updated_at = now() WHERE order_id = $1",
                order_id,
                courier.courier_id,
                route.distance_km,
                route.eta_minutes,
            )
            # Announced inside the transaction: if it fails, the assignment is rolled back and
            # retried; `move` is idempotent if the commit is what failed.
            name = next(r["name"] for r in rows if r["courier_id"] == courier.courier_id)
            await self.mover.move(
                order_id,
                OrderStatus.COURIER_ASSIGNED,
                detail=f"courier {courier.courier_id} ({name}), ETA {route.eta_minutes} min",
            )
            return True

    # --- courier steps -----------------------------------------------------------------------

    async def pickup(self, order_id: UUID, courier_id: str | None) -> DeliveryView:
        return await self._courier_step(
            order_id, courier_id, DeliveryState.ASSIGNED, DeliveryState.PICKED_UP
        )

    async def deliver(self, order_id: UUID, courier_id: str | None) -> DeliveryView:
        view = await self._courier_step(
            order_id, courier_id, DeliveryState.PICKED_UP, DeliveryState.DELIVERED
        )
        await self.dispatch_once()  # the courier is free again
        return view

    async def _courier_step(
        self,
        order_id: UUID,
        courier_id: str | None,
        source: DeliveryState,
        target: DeliveryState,
    ) -> DeliveryView:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT state, courier_id, lat, lon FROM deliveries WHERE order_id = $1 FOR UPDATE",
                order_id,
            )
            if row is None:
                raise DeliveryNotFound(f"no delivery for order {order_id}")
            if courier_id is not None and row["courier_id"] != courier_id:
                raise DeliveryConflict(f"order {order_id} is not assigned to {courier_id}")
            if row["state"] != target.value:
                if row["state"] != source.value:
                    raise DeliveryConflict(
                        f"order {order_id} is {row['state']}; it cannot be {target}"
                    )
                await self.mover.move(order_id, OrderStatus(target.value))
                await conn.execute(
                    "UPDATE deliveries SET state = $2, updated_at = now() WHERE order_id = $1",
                    order_id,
                    target.value,
                )
                if target is DeliveryState.DELIVERED:
                    await conn.execute(
                        "UPDATE couriers SET available = true, current_order = NULL, lat = $2,"
                        " lon = $3, updated_at = now() WHERE courier_id = $1",
                        row["courier_id"],
                        row["lat"],
                        row["lon"],
                    )
        return await self.view(order_id)

    # --- cancellation ------------------------------------------------------------------------

    async def cancel(self, order_id: UUID, reason: FailureReason) -> DeliveryView:
        """Before pickup: refund, stock back, courier freed, CANCELLED. Idempotent; a crash
        midway leaves the delivery CANCELLING, which the periodic round finishes."""
        known = await self.pool.fetchval("SELECT 1 FROM deliveries WHERE order_id = $1", order_id)
        if not known:  # confirmed a moment ago: the status event may not have arrived yet
            snapshot = await self.mover.store.load_snapshot(order_id)
            if snapshot is not None:
                await self.ingest(snapshot)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT state FROM deliveries WHERE order_id = $1 FOR UPDATE", order_id
            )
            if row is None:
                raise DeliveryNotFound(f"no delivery for order {order_id}")
            state = DeliveryState(row["state"])
            if state is DeliveryState.CANCELLED:
                return await self.view(order_id)
            if state is not DeliveryState.CANCELLING and state not in CANCELLABLE:
                raise DeliveryConflict(
                    f"order {order_id} is {state.value.replace('_', ' ').lower()};"
                    " it can no longer be cancelled"
                )
            await conn.execute(
                "UPDATE deliveries SET state = 'CANCELLING', cancel_reason = $2,"
                " updated_at = now() WHERE order_id = $1 AND state <> 'CANCELLING'",
                order_id,
                reason.value,
            )
        await self._compensate(order_id, reason)
        return await self.view(order_id)

    async def _compensate(self, order_id: UUID, reason: FailureReason) -> None:
        try:
            await self._refund(order_id)
            await self.stock.cancel(order_id)
        except (ServiceUnavailable, RequestRefused) as exc:
            log.error("Order %s: compensation incomplete, retried later: %s", order_id, exc)
            return
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE couriers SET available = true, current_order = NULL, updated_at = now()"
                " WHERE current_order = $1",
                order_id,
            )
            await self.mover.move(
                order_id, OrderStatus.CANCELLED, reason=reason, detail="refunded, stock returned"
            )
            await conn.execute(
                "UPDATE deliveries SET state = 'CANCELLED', updated_at = now() WHERE order_id = $1",
                order_id,
            )
        await self.dispatch_once()  # a courier may have been freed

    async def _refund(self, order_id: UUID) -> None:
        try:
            await self.payment.refund(
                PaymentRequest(order_id=order_id, idempotency_key=f"{order_id}:refund")
            )
        except RequestRefused as exc:
            if exc.status not in (404, 409):  # not captured (or never paid): a void instead
                raise
            await self.payment.void(
                PaymentRequest(order_id=order_id, idempotency_key=f"{order_id}:void")
            )

    # --- reads -------------------------------------------------------------------------------

    async def view(self, order_id: UUID) -> DeliveryView:
        row = await self.pool.fetchrow(
            "SELECT d.*, c.name AS courier_name FROM deliveries d"
            " LEFT JOIN couriers c USING (courier_id) WHERE d.order_id = $1",
            order_id,
        )
        if row is None:
            raise DeliveryNotFound(f"no delivery for order {order_id}")
        return DeliveryView.model_validate(dict(row))

    async def couriers(self) -> list[CourierView]:
        rows = await self.pool.fetch(
            "SELECT courier_id, name, lat, lon, available, current_order FROM couriers"
            " ORDER BY courier_id"
        )
        return [CourierView.model_validate(dict(r)) for r in rows]
