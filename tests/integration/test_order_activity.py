"""The dashboard's reads of `order_state` against the real PostgreSQL: recent orders (with their
publish time) and counts by status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import asyncpg
import pytest
import redis.asyncio as aioredis

from foodflow.contracts.orders import FailureReason, OrderItemIn, ValidatedOrder
from foodflow.orders.activity import counts_by_status, recent_snapshots
from foodflow.orders.lifecycle import Order
from foodflow.orders.status_store import OrderStateStore, StatusCache

pytestmark = pytest.mark.integration


async def test_recent_orders_come_back_oldest_first_with_their_publish_time(
    orders_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    store = OrderStateStore(orders_pool, StatusCache(redis_client, 600))
    published = datetime.now(UTC) - timedelta(seconds=3)
    since = datetime.now(UTC) - timedelta(seconds=1)
    ids = []
    for finish in ("fail", "stay"):
        request = ValidatedOrder(
            order_id=uuid4(), user_id="activity-test", items=[OrderItemIn(item_id="x", quantity=1)]
        )
        assert request.order_id is not None
        order = Order(order_id=request.order_id, request=request, published_at=published)
        order.receive()
        await store.save(order.full_snapshot(), request)
        if finish == "fail":  # left the saga: found through the other half of the query
            order.fail(FailureReason.OUT_OF_STOCK, "none left")
            await store.save(order.full_snapshot())
        ids.append(order.order_id)
    before = await counts_by_status(orders_pool)

    recent = await recent_snapshots(orders_pool, since, limit=10_000)
    mine = [s for s in recent if s.order_id in ids]
    assert [s.order_id for s in mine] == ids  # oldest change first
    assert [s.status for s in mine] == ["FAILED", "RECEIVED"]
    assert all(s.published_at == published for s in mine)
    assert [len(s.history) for s in mine] == [2, 1]
    assert await recent_snapshots(orders_pool, datetime.now(UTC) + timedelta(hours=1), 10) == []
    assert len(await recent_snapshots(orders_pool, since, limit=1)) == 1
    assert before["FAILED"] >= 1 and before["RECEIVED"] >= 1
