"""Adapter of the order lifecycle: reads an order's status and moves it one step on.

From CONFIRMED on this service moves an order's courier steps and cancellations (the
restaurant service its kitchen steps, the same way): each step reads the snapshot from the
status store, applies `advance` (version + 1, the kitchen plan kept), stores it behind the
store's version guard and then announces it (every step on `order_status_updates`, final ones
also enriched on `db_write_order_status`). A save that loses to the other writer re-reads.
"""

from __future__ import annotations

import logging
from typing import Protocol
from uuid import UUID

from foodflow.contracts.orders import (
    FailureReason,
    OrderFinalEvent,
    OrderSnapshot,
    OrderStatus,
    OrderStatusUpdate,
)
from foodflow.delivery_service.domain import DeliveryConflict, DeliveryNotFound
from foodflow.orders.lifecycle import IllegalTransition, advance
from foodflow.orders.status_store import OrderStateStore, SaveOutcome
from foodflow.platform.retry import retry_async

log = logging.getLogger(__name__)
MOVE_ATTEMPTS = 5


class Announce(Protocol):
    """Publishes a transition (`foodflow.orders.announcer.KafkaAnnouncer`)."""

    async def __call__(self, update: OrderStatusUpdate, final: OrderFinalEvent | None) -> None: ...


class OrderOvertaken(DeliveryConflict):
    """Another writer stored a version of the order first, every time we tried."""

    def __init__(self, order_id: UUID) -> None:
        super().__init__(f"order {order_id} keeps changing; try again")


class OrderStatusMover:
    """`OrderStatuses` over the order state store (PostgreSQL, version-guarded) and an
    announcer."""

    def __init__(self, store: OrderStateStore, announce: Announce) -> None:
        self.store = store
        self.announce = announce

    async def snapshot(self, order_id: UUID) -> OrderSnapshot | None:
        return await self.store.load_snapshot(order_id)

    async def move(
        self,
        order_id: UUID,
        target: OrderStatus,
        *,
        reason: FailureReason | None = None,
        detail: str | None = None,
    ) -> OrderSnapshot:
        """Move the order to `target`; a step already taken returns the current snapshot."""

        async def attempt() -> OrderSnapshot:
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
                raise OrderOvertaken(order_id)
            final = (
                OrderFinalEvent.model_validate(moved.model_dump())
                if moved.status.persisted
                else None
            )
            await self.announce(moved.status_update(), final)
            log.info("Order %s %s v%d %s", order_id, target, moved.version, detail or "")
            return moved

        # Another writer got there first: read again and decide again, at once (the other
        # writer is done, there is nothing to wait for).
        return await retry_async(
            attempt,
            retry_on=(OrderOvertaken,),
            attempts=MOVE_ATTEMPTS,
            base_delay=0.0,
            max_delay=0.0,
            what=f"moving order {order_id} to {target}",
            on_retry=lambda _attempt, exc, _delay: log.info("%s; reading it again", exc),
        )
