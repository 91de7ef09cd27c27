"""Gives back stock held by reservations that no saga will ever commit or release."""

from __future__ import annotations

import logging

from foodflow.inventory_service.domain import InventoryError
from foodflow.inventory_service.repository import InventoryRepository
from foodflow.inventory_service.services import release_reservation
from foodflow.platform.db.pool import DATABASE_UNAVAILABLE_ERRORS

log = logging.getLogger(__name__)


class ReservationSweeper:
    """Releases reservations RESERVED for longer than `ttl`; `sweep` is one round of it.

    A saga commits or releases within its order timeout; a reservation older than `ttl`
    belongs to a saga that died or whose release never arrived. Releasing it is safe: a late
    commit of it is refused (409) and that order fails instead of taking the stock twice.
    """

    def __init__(self, repository: InventoryRepository, *, ttl: float) -> None:
        self.repository = repository
        self.ttl = ttl
        self.released = 0

    async def sweep_once(self) -> int:
        released = 0
        for order_id in await self.repository.expired_reservations(self.ttl):
            try:
                await release_reservation(self.repository.unit_of_work(), order_id)
            except InventoryError as exc:  # committed or released meanwhile: nothing to do
                log.info("Expired reservation of order %s not released: %s", order_id, exc)
                continue
            log.warning("Released expired reservation of order %s", order_id)
            released += 1
        self.released += released
        return released

    async def sweep(self) -> None:
        """One round; a database that is down skips it with a warning (the next round retries)."""
        try:
            await self.sweep_once()
        except DATABASE_UNAVAILABLE_ERRORS as exc:
            log.warning("Reservation sweep skipped, database unavailable: %s", exc)
