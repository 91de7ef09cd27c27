"""Catalogue prices from the inventory service's catalogue, reused for a few seconds.

The catalogue belongs to the inventory service; pricing reads it through its API
(`GET /catalogue`: every item, unlisted bench and chaos items too, unlike the public `/menu`;
see `foodflow.clients.inventory`), never from its tables.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Protocol

from foodflow.contracts.inventory import MenuItem

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 5.0


class MenuSource(Protocol):
    async def catalogue(self) -> Sequence[MenuItem]: ...


class CataloguePrices:
    """Unit prices by item id, from one menu read reused for `ttl_seconds`.

    An item missing from the last read triggers a fresh read: an item added to the catalogue
    is priced on the next request, not after the cache expires. Requests that need a read
    while one is under way share it, so a busy moment costs one `GET /catalogue`, not one each.
    """

    def __init__(
        self,
        source: MenuSource,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._ttl = ttl_seconds
        self._clock = clock
        self._prices: dict[str, Decimal] = {}
        self._read_at = -float("inf")
        self._reading: asyncio.Future[None] | None = None

    async def prices(self, item_ids: Iterable[str]) -> dict[str, Decimal]:
        """Price of each known item among `item_ids`; unknown ids are simply absent."""
        wanted = set(item_ids)
        if self._clock() - self._read_at < self._ttl:
            prices = self._prices
            found = {}
            for item_id in wanted:
                price = prices.get(item_id)
                if price is None:
                    break
                found[item_id] = price
            else:
                return found
        await self._read()
        prices = self._prices
        return {item_id: prices[item_id] for item_id in wanted if item_id in prices}

    async def _read(self) -> None:
        reading = self._reading
        if reading is None:
            reading = self._reading = asyncio.ensure_future(self._read_menu())
            reading.add_done_callback(self._read_done)
        # Shielded: one caller giving up must not cancel the read the others wait for.
        await asyncio.shield(reading)

    def _read_done(self, reading: asyncio.Future[None]) -> None:
        self._reading = None

    async def _read_menu(self) -> None:
        read_at = self._clock()
        menu = await self._source.catalogue()
        self._prices = {item.item_id: item.price for item in menu}
        self._read_at = read_at

    def clear(self) -> None:
        self._prices = {}
        self._read_at = -float("inf")
