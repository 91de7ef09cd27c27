"""The order state store against the real PostgreSQL and Redis: PostgreSQL is the truth behind a
version guard, Redis only a copy that may vanish, go stale or be down."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import asyncpg
import pytest
import redis.asyncio as aioredis

from foodflow.contracts.orders import (
    FailureReason,
    OrderItemIn,
    OrderSnapshot,
    OrderStatus,
    ValidatedOrder,
    order_status_key,
)
from foodflow.orders.lifecycle import Order
from foodflow.orders.status_store import (
    OrderStateStore,
    SaveOutcome,
    StatusCache,
    StatusReader,
    stored_status_values,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def store(orders_pool: asyncpg.Pool, redis_client: aioredis.Redis) -> OrderStateStore:
    return OrderStateStore(orders_pool, StatusCache(redis_client, 600))


def new_order() -> Order:
    request = ValidatedOrder(
        order_id=uuid4(), user_id="state-test", items=[OrderItemIn(item_id="x", quantity=1)]
    )
    assert request.order_id is not None
    return Order(order_id=request.order_id, request=request)


async def test_a_version_is_stored_once_with_one_status(store: OrderStateStore) -> None:
    order = new_order()
    order.receive()
    received = order.full_snapshot()
    assert await store.save(received, order.request) is SaveOutcome.WRITTEN
    assert await store.save(received, order.request) is SaveOutcome.ALREADY_THERE
    other = received.model_copy(update={"status": OrderStatus.FAILED})
    assert await store.save(other) is SaveOutcome.CONFLICT  # v1 is RECEIVED, for good
    order.fail(FailureReason.OUT_OF_STOCK, "none left")
    assert await store.save(order.full_snapshot()) is SaveOutcome.WRITTEN
    assert await store.save(received) is SaveOutcome.ALREADY_THERE  # older: a replay
    loaded = await store.load_snapshot(order.order_id)
    assert loaded is not None and (loaded.version, loaded.status) == (2, OrderStatus.FAILED)


async def test_a_stale_saga_cannot_pass_its_own_transition_off_as_a_replay(
    store: OrderStateStore,
) -> None:
    """Two sagas of one order (a sweep of a slow one, a redelivery): the one behind must see a
    conflict, not "already there", when its transition is not the one stored at that version.
    Taking it for a replay, it announced it: the chaos run's 55 orders with two transitions
    under one version (and its timeout went on to undo the winner's order)."""
    order = new_order()
    order.receive()
    assert await store.save(order.full_snapshot(), order.request) is SaveOutcome.WRITTEN
    behind = Order.resume(order.request, order.full_snapshot())
    # The other saga goes on: PROCESSING v2, then FAILED PAYMENT_UNAVAILABLE v3.
    order.transition(OrderStatus.PROCESSING)
    assert await store.save(order.full_snapshot()) is SaveOutcome.WRITTEN
    ahead = Order.resume(order.request, order.full_snapshot())
    order.fail(FailureReason.PAYMENT_UNAVAILABLE, "payment down")
    assert await store.save(order.full_snapshot()) is SaveOutcome.WRITTEN
    # A saga still at RECEIVED times out: FAILED v2, where PROCESSING is stored.
    behind.fail(FailureReason.TIMED_OUT, "not final within 30s")
    assert await store.save(behind.full_snapshot()) is SaveOutcome.CONFLICT
    # One at PROCESSING times out: FAILED v3 too, but for another reason.
    ahead.fail(FailureReason.TIMED_OUT, "not final within 30s")
    assert await store.save(ahead.full_snapshot()) is SaveOutcome.CONFLICT
    # A true replay, of the latest or an older transition, is still one.
    assert await store.save(order.full_snapshot()) is SaveOutcome.ALREADY_THERE
    replayed = Order.resume(order.request, order.full_snapshot())
    replayed.history = replayed.history[:2]
    replayed.status, replayed.version, replayed.reason = OrderStatus.PROCESSING, 2, None
    assert await store.save(replayed.full_snapshot()) is SaveOutcome.ALREADY_THERE


async def test_racing_writers_of_one_version_get_one_winner(store: OrderStateStore) -> None:
    # Two sagas (say a sweeper and a redelivery) store v1 at once, with different statuses.
    orders = [new_order() for _ in range(20)]
    saves = []
    for order in orders:
        order.receive()
        snapshot = order.full_snapshot()
        saves.append(store.save(snapshot, order.request))
        saves.append(store.save(snapshot.model_copy(update={"status": OrderStatus.FAILED})))
    outcomes = await asyncio.gather(*saves)
    for first, second in zip(outcomes[::2], outcomes[1::2], strict=True):
        assert sorted([first, second]) == [SaveOutcome.CONFLICT, SaveOutcome.WRITTEN]


async def test_a_flushed_cache_is_read_from_postgres_and_filled_again(
    store: OrderStateStore, orders_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    order = new_order()
    order.receive()
    await store.save(order.full_snapshot(), order.request)
    key = order_status_key(order.order_id)
    assert await redis_client.exists(key)  # copied to the cache
    await redis_client.delete(key)  # what FLUSHALL does to it
    reader = StatusReader(orders_pool, StatusCache(redis_client, 600))
    snapshot = await reader.snapshot(order.order_id)
    assert snapshot is not None and snapshot.status is OrderStatus.RECEIVED
    assert await redis_client.exists(key)  # filled again
    assert await store.load_snapshot(order.order_id) == snapshot


async def test_the_cache_never_goes_back(
    store: OrderStateStore, redis_client: aioredis.Redis
) -> None:
    order = new_order()
    order.receive()
    received = order.full_snapshot()
    order.fail(FailureReason.OUT_OF_STOCK)
    failed = order.full_snapshot()
    await store.save(received, order.request)
    await store.save(failed)
    await store.cache.put([received])  # a late copy of the older version
    raw = await redis_client.get(order_status_key(order.order_id))
    assert raw is not None and OrderSnapshot.model_validate_json(raw).version == 2


async def test_a_redis_that_forgot_the_cache_script_is_given_it_again(
    store: OrderStateStore, redis_client: aioredis.Redis
) -> None:
    """Redis loses its scripts when it restarts (or on SCRIPT FLUSH); the copy is written all
    the same, and the older-version guard still holds."""
    order = new_order()
    order.receive()
    received = order.full_snapshot()
    await store.save(received, order.request)
    order.fail(FailureReason.OUT_OF_STOCK)
    failed = order.full_snapshot()
    await redis_client.script_flush()
    await store.save(failed)
    raw = await redis_client.get(order_status_key(order.order_id))
    assert raw is not None and OrderSnapshot.model_validate_json(raw).version == 2
    await redis_client.script_flush()
    await store.cache.put([received])  # a late copy of the older version: not written
    raw = await redis_client.get(order_status_key(order.order_id))
    assert raw is not None and OrderSnapshot.model_validate_json(raw).version == 2


async def test_orders_are_stored_while_redis_is_down(orders_pool: asyncpg.Pool) -> None:
    nowhere = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        store = OrderStateStore(orders_pool, StatusCache(nowhere, 600))
        order = new_order()
        order.receive()
        assert await store.save(order.full_snapshot(), order.request) is SaveOutcome.WRITTEN
        reader = StatusReader(orders_pool, store.cache)
        update = await reader.status(order.order_id)
        assert update is not None and update.status is OrderStatus.RECEIVED
    finally:
        await nowhere.aclose()


async def test_unfinished_orders_are_leased_to_one_sweeper(
    store: OrderStateStore, orders_pool: asyncpg.Pool
) -> None:
    stuck, done = new_order(), new_order()
    for order in (stuck, done):
        order.receive()
        await store.save(order.full_snapshot(), order.request)
    done.fail(FailureReason.OUT_OF_STOCK)
    await store.save(done.full_snapshot())
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    await orders_pool.execute(
        "UPDATE order_state SET created_at = $2 WHERE order_id = ANY($1::uuid[])",
        [stuck.order_id, done.order_id],
        long_ago,
    )
    claimed = dict(await store.claim_stale(older_than_seconds=1800, lease_seconds=60, limit=1000))
    assert stuck.order_id in claimed and done.order_id not in claimed
    assert claimed[stuck.order_id] == stuck.request
    again = dict(await store.claim_stale(older_than_seconds=1800, lease_seconds=60, limit=1000))
    assert stuck.order_id not in again  # leased to the first sweeper
    statuses = await stored_status_values(orders_pool, [stuck.order_id, done.order_id, uuid4()])
    assert statuses == {str(stuck.order_id): "RECEIVED", str(done.order_id): "FAILED"}


async def test_orders_final_past_the_retention_are_forgotten(
    store: OrderStateStore, orders_pool: asyncpg.Pool
) -> None:
    old, recent, unfinished = new_order(), new_order(), new_order()
    for order in (old, recent, unfinished):
        order.receive()
        await store.save(order.full_snapshot(), order.request)
    for order in (old, recent):
        order.fail(FailureReason.OUT_OF_STOCK)
        await store.save(order.full_snapshot())
    await orders_pool.execute(
        "UPDATE order_state SET updated_at = now() - interval '40 days'"
        " WHERE order_id = ANY($1::uuid[])",
        [old.order_id, unfinished.order_id],
    )
    while await store.prune(older_than_seconds=30 * 86400):
        pass
    left = await stored_status_values(
        orders_pool, [old.order_id, recent.order_id, unfinished.order_id]
    )
    assert left == {str(recent.order_id): "FAILED", str(unfinished.order_id): "RECEIVED"}
