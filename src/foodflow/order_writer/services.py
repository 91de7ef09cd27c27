"""The writer's use case: write a batch of final orders, isolating the ones the store refuses.

It runs over `OrderStore` (anything with that shape), so it is unit-tested on a fake.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from foodflow.contracts.orders import OrderFinalEvent
from foodflow.orders.records import WriteResult
from foodflow.platform.errors import FoodflowError

log = logging.getLogger(__name__)


class OrdersRefused(FoodflowError):
    """The store refused the data itself (a CHECK, an overflow): retrying cannot help."""


class OrderStore(Protocol):
    async def write(self, events: Sequence[OrderFinalEvent]) -> WriteResult:
        """Write one reduced batch in one transaction; `OrdersRefused` for bad data."""
        ...


Refusal = tuple[OrderFinalEvent, str]


async def write_final_orders(
    store: OrderStore, events: Sequence[OrderFinalEvent]
) -> tuple[WriteResult, list[Refusal]]:
    """Write `events`; when the store refuses the batch, write them one by one so that only
    the culprits are left out. Returns what was written and each refused event with why."""
    try:
        return await store.write(events), []
    except OrdersRefused as exc:
        if len(events) == 1:
            return WriteResult(), [(events[0], f"PostgreSQL rejected the order: {exc}")]
        log.warning("Batch of %d order(s) rejected (%s); writing one by one", len(events), exc)
    total = WriteResult()
    refused: list[Refusal] = []
    for event in events:
        one, bad = await write_final_orders(store, [event])
        total.orders_written += one.orders_written
        total.stale += one.stale
        total.item_rows += one.item_rows
        total.history_rows += one.history_rows
        refused += bad
    return total, refused
