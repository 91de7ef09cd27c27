"""Finds orders whose saga died with its process and drives them to a final state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from uuid import UUID

from foodflow.order_manager.saga import OrderSaga
from foodflow.orders.status_store import RedisStatusStore

log = logging.getLogger(__name__)


class StuckOrderSweeper:
    """Every `interval` seconds, re-runs the saga of orders not final after `stuck_after`.

    Redelivery of uncommitted messages already finishes most interrupted orders; this catches
    the rest (an order whose message was committed by a consumer that then lost its state, a
    hang that outlived every timeout). The saga's replay is idempotent, so a sweep of an order
    that was merely slow changes nothing.
    """

    def __init__(
        self, saga: OrderSaga, store: RedisStatusStore, *, interval: float, stuck_after: float
    ) -> None:
        self.saga = saga
        self.store = store
        self.interval = interval
        self.stuck_after = stuck_after
        self.swept = 0
        self._stopping = asyncio.Event()

    async def sweep_once(self) -> int:
        finished = 0
        for order_id in await self.store.stale_in_flight(self.stuck_after):
            if not await self.store.claim(order_id, seconds=int(self.saga.order_timeout * 2)):
                continue  # another instance's sweeper has it
            request = await self.store.load_request(order_id)
            if request is None:
                log.error("Stuck order %s has no stored request; cannot re-drive it", order_id)
                await self.store.forget_in_flight(order_id)
                continue
            log.warning("Sweeping stuck order %s", order_id)
            await self.saga.run(UUID(order_id), request)
            finished += 1
        self.swept += finished
        return finished

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.sweep_once()
            except Exception:
                log.exception("Sweeping stuck orders failed; trying again next round")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval)

    def stop(self) -> None:
        self._stopping.set()
