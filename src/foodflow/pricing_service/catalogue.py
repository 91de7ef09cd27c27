"""Catalogue prices from PostgreSQL (`inventory_items.price`), cached for a few seconds."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from decimal import Decimal

import asyncpg

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 5.0


class CataloguePrices:
    """Reads unit prices by item id; a price is reused for `ttl_seconds`, then read again.

    Only prices that exist are cached: an item added to the catalogue is priced on the next
    request, not after the cache expires.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[Decimal, float]] = {}

    async def prices(self, item_ids: Iterable[str]) -> dict[str, Decimal]:
        """Price of each known item among `item_ids`; unknown ids are simply absent."""
        now = self._clock()
        wanted = set(item_ids)
        found = {}
        stale = []
        for item_id in wanted:
            cached = self._cache.get(item_id)
            if cached is not None and now - cached[1] < self._ttl:
                found[item_id] = cached[0]
            else:
                stale.append(item_id)
        if stale:
            rows = await self._pool.fetch(
                "SELECT item_id, price FROM inventory_items WHERE item_id = ANY($1::text[])",
                stale,
            )
            for row in rows:
                found[row["item_id"]] = row["price"]
                self._cache[row["item_id"]] = (row["price"], now)
        return found

    def clear(self) -> None:
        self._cache.clear()
