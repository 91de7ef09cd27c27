"""The shared reads of orders by their owners' modules, against the real PostgreSQL and Redis:
`records.stored_statuses` / `records.read_order` and `status_store.cached_status_values`."""

from __future__ import annotations

from uuid import uuid4

import asyncpg
import pytest
import redis.asyncio as aioredis

from foodflow.contracts.orders import OrderStatus
from foodflow.orders import records, status_store
from tests.integration.test_order_writer import final_event

pytestmark = pytest.mark.integration


async def test_stored_statuses_name_only_the_orders_with_a_row(orders_pool: asyncpg.Pool) -> None:
    confirmed, failed, missing = uuid4(), uuid4(), uuid4()
    await records.write_final_orders(
        orders_pool, [final_event(confirmed), final_event(failed, status=OrderStatus.FAILED)]
    )
    found = await records.stored_statuses(orders_pool, [confirmed, str(failed), missing])
    assert found == {str(confirmed): "CONFIRMED", str(failed): "FAILED"}
    record = await records.read_order(orders_pool, confirmed)
    assert record is not None and [c.version for c in record.history] == [1, 2, 3]


async def test_live_statuses_come_back_in_order_across_chunks(
    redis_client: aioredis.Redis,
) -> None:
    ids = [uuid4() for _ in range(7)]
    for n, order_id in enumerate(ids):
        if n % 3 != 1:  # every third order has no live status
            status = "CONFIRMED" if n % 2 else "FAILED"
            await redis_client.set(f"order_status:{order_id}", f'{{"status": "{status}"}}', ex=60)
    values = await status_store.cached_status_values(redis_client, ids, chunk=2)
    expected = [None if n % 3 == 1 else ("CONFIRMED" if n % 2 else "FAILED") for n in range(7)]
    assert values == expected
