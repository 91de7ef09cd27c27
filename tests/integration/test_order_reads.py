"""The shared reads of orders by their owners' modules, against the real PostgreSQL and Redis:
`records.stored_statuses` / `records.read_order` and `status_store.cached_status_values`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import asyncpg
import pytest
import redis.asyncio as aioredis

from foodflow.contracts.orders import OrderStatus
from foodflow.orders import records, status_store
from foodflow.platform.config import Settings
from tests.integration.test_order_writer import final_event

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(infra: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(infra.postgres_dsn, min_size=1, max_size=2)
    await records.migrate_orders(pool)
    yield pool
    await pool.close()


@pytest.fixture
async def redis_client(infra: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(infra.redis_url)
    yield client
    await client.aclose()


async def test_stored_statuses_name_only_the_orders_with_a_row(pool: asyncpg.Pool) -> None:
    confirmed, failed, missing = uuid4(), uuid4(), uuid4()
    await records.write_final_orders(
        pool, [final_event(confirmed), final_event(failed, status=OrderStatus.FAILED)]
    )
    found = await records.stored_statuses(pool, [confirmed, str(failed), missing])
    assert found == {str(confirmed): "CONFIRMED", str(failed): "FAILED"}
    record = await records.read_order(pool, confirmed)
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
