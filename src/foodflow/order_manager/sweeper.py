"""Finds orders whose saga died with its process and drives them to a final state."""

from __future__ import annotations

import logging

from foodflow.order_manager.saga import OrderSaga
from foodflow.orders.status_store import OrderStateStore

log = logging.getLogger(__name__)


class StuckOrderSweeper:
    """Re-runs the saga of orders not final after `stuck_after` (the app runs `sweep_once`
    every few seconds).

    Redelivery of uncommitted messages already finishes most interrupted orders; this catches
    the rest (an order whose message was committed by a consumer that then lost its state, a
    hang that outlived every timeout). The saga's replay is idempotent, so a sweep of an order
    that was merely slow changes nothing.
    """

    def __init__(
        self,
        saga: OrderSaga,
        store: OrderStateStore,
        *,
        stuck_after: float,
        retention_seconds: float = 30 * 86400,
    ) -> None:
        self.saga = saga
        self.store = store
        self.stuck_after = stuck_after
        self.retention_seconds = retention_seconds
        self.swept = 0

    async def sweep_once(self) -> int:
        finished = 0
        # Each order is leased to this sweeper for twice an order's time: another instance's
        # sweeper skips it meanwhile, and takes it over if this process dies.
        lease = self.saga.order_timeout * 2
        for order_id, request in await self.store.claim_stale(self.stuck_after, lease):
            if request is None:
                log.error("Stuck order %s has no stored request; cannot re-drive it", order_id)
                continue
            log.warning("Sweeping stuck order %s", order_id)
            await self.saga.run(order_id, request)
            finished += 1
        self.swept += finished
        pruned = await self.store.prune(self.retention_seconds)
        if pruned:
            log.info("Forgot the state of %d orders final for over the retention", pruned)
        return finished
