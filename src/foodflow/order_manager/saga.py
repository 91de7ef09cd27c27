"""Drives one order: reserve stock → price → PROCESSING → payment → CONFIRMED, or FAILED."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol
from uuid import UUID

from foodflow.contracts.inventory import ReservationState
from foodflow.contracts.orders import (
    FailureReason,
    OrderFinalEvent,
    OrderStatusUpdate,
    ValidatedOrder,
)
from foodflow.contracts.pricing import PriceResponse
from foodflow.errors import ServiceUnavailable
from foodflow.order_manager.clients import RequestRefused
from foodflow.order_manager.domain import Order

log = logging.getLogger(__name__)


class Inventory(Protocol):
    async def reserve(self, order_id: UUID, order: ValidatedOrder) -> ReservationState: ...
    async def commit(self, order_id: UUID) -> ReservationState: ...
    async def release(self, order_id: UUID) -> ReservationState | None: ...


class Pricing(Protocol):
    async def calculate_price(self, order_id: UUID, order: ValidatedOrder) -> PriceResponse: ...


class StatusStore(Protocol):
    async def save(self, update: OrderStatusUpdate) -> bool: ...
    async def load(self, order_id: UUID | str) -> OrderStatusUpdate | None: ...


class Announcer(Protocol):
    """Makes a transition known: the status event, and for final states the enriched event."""

    async def __call__(self, update: OrderStatusUpdate, final: OrderFinalEvent | None) -> None: ...


class OrderSaga:
    def __init__(
        self,
        *,
        inventory: Inventory,
        pricing: Pricing,
        store: StatusStore,
        announce: Announcer,
        payment_delay: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.inventory = inventory
        self.pricing = pricing
        self.store = store
        self.announce = announce
        self.payment_delay = payment_delay
        self.sleep = sleep

    async def _record(self, order: Order, update: OrderStatusUpdate) -> None:
        await self.store.save(update)
        await self.announce(update, order.final_event() if order.is_final else None)

    async def _fail(self, order: Order, reason: FailureReason, detail: str) -> Order:
        log.warning("Order %s FAILED reason=%s: %s", order.order_id, reason, detail)
        await self._record(order, order.fail(reason, detail))
        return order

    async def _release(self, order: Order) -> None:
        try:
            await self.inventory.release(order.order_id)
        except (ServiceUnavailable, RequestRefused) as exc:
            # The reservation stays held; the sweeper of stuck reservations gives it back.
            log.error("Order %s: releasing stock failed: %s", order.order_id, exc)

    async def run(self, order_id: UUID, request: ValidatedOrder) -> Order | None:
        """Take one order to a final state. A redelivered, already final order is left alone."""
        existing = await self.store.load(order_id)
        if existing is not None and existing.is_final:
            log.info("Order %s is already %s; redelivery ignored", order_id, existing.status)
            return None
        order = Order(order_id=order_id, request=request)
        log.info("Received validated order %s from %s", order_id, request.user_id)
        await self._record(order, order.receive())

        log.info("Checking inventory... order %s", order_id)
        try:
            reservation = await self.inventory.reserve(order_id, request)
        except RequestRefused as exc:
            return await self._fail(order, FailureReason.INVALID_ORDER, exc.message)
        except ServiceUnavailable as exc:
            await self._release(order)
            return await self._fail(order, FailureReason.INVENTORY_UNAVAILABLE, str(exc))
        log.info("Available=%s order %s", reservation.reserved, order_id)
        if not reservation.reserved:
            if reservation.unknown_items:
                detail = "unknown items: " + ", ".join(reservation.unknown_items)
                return await self._fail(order, FailureReason.UNKNOWN_ITEM, detail)
            detail = "not enough stock: " + ", ".join(reservation.short_items)
            return await self._fail(order, FailureReason.OUT_OF_STOCK, detail)

        log.info("Calculating price... order %s", order_id)
        try:
            priced = await self.pricing.calculate_price(order_id, request)
        except RequestRefused as exc:
            await self._release(order)
            return await self._fail(order, FailureReason.INVALID_ORDER, exc.message)
        except ServiceUnavailable as exc:
            await self._release(order)
            return await self._fail(order, FailureReason.PRICING_UNAVAILABLE, str(exc))
        log.info(
            "Final Price=%s %s order %s",
            priced.breakdown.total,
            priced.breakdown.currency,
            order_id,
        )

        log.info("Processing order %s", order_id)
        await self._record(order, order.start_processing(priced.lines, priced.breakdown))
        await self.sleep(self.payment_delay)

        log.info("Confirming order %s", order_id)
        try:
            await self.inventory.commit(order_id)
        except (ServiceUnavailable, RequestRefused) as exc:
            await self._release(order)
            return await self._fail(order, FailureReason.INVENTORY_UNAVAILABLE, str(exc))
        await self._record(order, order.confirm())
        log.info(
            "Finished processing order %s: CONFIRMED, total %s", order_id, priced.breakdown.total
        )
        return order
