"""Adapter of the order lifecycle: reads an order's status and moves it one kitchen step on.

Each step reads the snapshot from the status store, applies `advance` (version + 1, the kitchen
plan set or kept), stores it behind the store's version guard and then announces it (every step
on `order_status_updates`, enriched on `db_write_order_status` too). A step the order has taken
already is announced again: the ticket's change is recorded in the transaction around the move,
so finding the order moved means that transaction did not commit, and possibly that the
announcement never went out; consumers take a version they have as a replay.
"""

from __future__ import annotations

import logging
from typing import Protocol
from uuid import UUID

from foodflow.contracts.orders import (
    ALLOWED_TRANSITIONS,
    FailureReason,
    KitchenPlan,
    OrderFinalEvent,
    OrderSnapshot,
    OrderStatus,
    OrderStatusUpdate,
)
from foodflow.orders.lifecycle import IllegalTransition, advance
from foodflow.orders.status_store import SaveOutcome
from foodflow.platform.retry import retry_async
from foodflow.restaurant_service.domain import TicketConflict

log = logging.getLogger(__name__)
MOVE_ATTEMPTS = 5


class Announce(Protocol):
    """Publishes a transition (`foodflow.orders.announcer.KafkaAnnouncer`)."""

    async def __call__(self, update: OrderStatusUpdate, final: OrderFinalEvent | None) -> None: ...


class StateStore(Protocol):
    """What the mover needs of `foodflow.orders.status_store.OrderStateStore`."""

    async def load_snapshot(self, order_id: UUID) -> OrderSnapshot | None: ...
    async def save(self, update: OrderSnapshot) -> SaveOutcome: ...


class OrderOvertaken(TicketConflict):
    """Another writer stored a version of the order first, every time we tried."""

    def __init__(self, order_id: UUID) -> None:
        super().__init__(f"order {order_id} keeps changing; try again")


def taken_already(current: OrderSnapshot, target: OrderStatus, kitchen: KitchenPlan | None) -> bool:
    """The order is at `target` already. For PREPARING only with this kitchen plan: a delay
    re-enters PREPARING with a new plan, a step still to take. An acceptance is taken once,
    whatever time a retry asks for (the first one stands: the retry of an accept whose ticket
    did not commit must find it done, not refused)."""
    if current.status is not target:
        return False
    return target is not OrderStatus.PREPARING or kitchen is None or current.kitchen == kitchen


class OrderStatusMover:
    """`OrderStatuses` over the order state store (`OrderStateStore`: PostgreSQL,
    version-guarded) and an announcer."""

    def __init__(self, store: StateStore, announce: Announce) -> None:
        self.store = store
        self.announce = announce

    async def snapshot(self, order_id: UUID) -> OrderSnapshot | None:
        return await self.store.load_snapshot(order_id)

    async def move(
        self,
        order_id: UUID,
        target: OrderStatus,
        *,
        via: OrderStatus | None = None,
        reason: FailureReason | None = None,
        detail: str | None = None,
        kitchen: KitchenPlan | None = None,
    ) -> OrderSnapshot:
        """Move the order to `target` (through `via` first when `target` cannot be reached
        directly from where the order is); a step already taken is announced again and the
        current snapshot returned. A move the lifecycle refuses is a `TicketConflict`."""

        async def attempt() -> OrderSnapshot:
            current = await self.store.load_snapshot(order_id)
            if current is None:
                raise TicketConflict(f"order {order_id} has no current status")
            if taken_already(current, target, kitchen):
                await self._announce(current)
                return current
            if via is not None and target not in ALLOWED_TRANSITIONS[current.status]:
                current = await self._step(current, via, None, None, kitchen)
            return await self._step(current, target, reason, detail, kitchen)

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

    async def _step(
        self,
        current: OrderSnapshot,
        target: OrderStatus,
        reason: FailureReason | None,
        detail: str | None,
        kitchen: KitchenPlan | None,
    ) -> OrderSnapshot:
        try:
            moved = advance(current, target, reason=reason, detail=detail, kitchen=kitchen)
        except IllegalTransition as exc:
            raise TicketConflict(str(exc)) from exc
        if await self.store.save(moved) is not SaveOutcome.WRITTEN:
            raise OrderOvertaken(current.order_id)
        await self._announce(moved)
        log.info("Order %s %s v%d %s", moved.order_id, target, moved.version, detail or "")
        return moved

    async def _announce(self, snapshot: OrderSnapshot) -> None:
        final = (
            OrderFinalEvent.model_validate(snapshot.model_dump())
            if snapshot.status.persisted
            else None
        )
        await self.announce(snapshot.status_update(), final)
