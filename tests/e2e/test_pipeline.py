"""The seed's pipeline end to end, through the real Kafka, PostgreSQL, Redis and services."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from decimal import Decimal

import asyncpg
import orjson
import pytest
import redis.asyncio as aioredis

from foodflow.contracts import topics
from foodflow.contracts.orders import (
    DeadLetter,
    OrderFinalEvent,
    OrderItemIn,
    OrderStatusUpdate,
    ValidatedOrder,
)
from foodflow.platform.config import Settings
from foodflow.tools import processes, tracking

from .conftest import E2E_ENV, Tail, sent_id, wait_final, wait_row, wait_stock

pytestmark = pytest.mark.e2e


def order_of(*items: tuple[str, int], user: str = "e2e-user") -> ValidatedOrder:
    return ValidatedOrder(
        order_id=uuid.uuid4(),
        user_id=user,
        items=[OrderItemIn(item_id=i, quantity=q) for i, q in items],
    )


async def stock_of(db: asyncpg.Connection, item_id: str) -> int:
    stock: int = await db.fetchval("SELECT stock FROM inventory_items WHERE item_id = $1", item_id)
    return stock


async def test_seed_console_line_ends_confirmed_everywhere(
    system: Settings, db: asyncpg.Connection, redis_client: aioredis.Redis, tail: Tail
) -> None:
    statuses, finals = tail(topics.ORDER_STATUS_UPDATES), tail(topics.DB_WRITE_ORDER_STATUS)
    sushi, pho = await stock_of(db, "sushi-set"), await stock_of(db, "pho-bo")

    # Exactly what a user types into a console producer: no key, no order id.
    order_id = await asyncio.to_thread(tracking.send_seed_line, system)

    current = await wait_final(redis_client, order_id)
    assert current.status == "CONFIRMED" and current.user_id == "user-001"
    assert current.price is not None
    # 43.50 subtotal, 10% over 40 → 4.35 off, 2.99 delivery, 7% tax on 42.14 → 2.95.
    assert current.price.total == Decimal("45.09")
    assert current.version == 3

    row = await wait_row(db, order_id)
    assert (row["status"], row["total"], row["user_id"]) == (
        "CONFIRMED",
        Decimal("45.09"),
        "user-001",
    )
    items = await db.fetch(
        "SELECT item_id, quantity, unit_price FROM order_items WHERE order_id=$1 ORDER BY item_id",
        order_id,
    )
    assert [tuple(r) for r in items] == [
        ("pho-bo", 2, Decimal("9.00")),
        ("sushi-set", 1, Decimal("25.50")),
    ]
    history = await db.fetch(
        "SELECT status FROM order_status_history WHERE order_id=$1 ORDER BY version", order_id
    )
    assert [r["status"] for r in history] == ["RECEIVED", "PROCESSING", "CONFIRMED"]

    await statuses.until({str(order_id)}, 3)
    seen = [OrderStatusUpdate.model_validate_json(v) for v in statuses.values(str(order_id))]
    assert [(u.status, u.version) for u in seen] == [
        ("RECEIVED", 1),
        ("PROCESSING", 2),
        ("CONFIRMED", 3),
    ]
    await finals.until({str(order_id)}, 1)
    final = OrderFinalEvent.model_validate_json(finals.values(str(order_id))[0])
    assert final.status == "CONFIRMED" and len(final.items) == 2 and len(final.history) == 3

    # A CONFIRMED order really took the stock.
    assert await stock_of(db, "sushi-set") == sushi - 1
    assert await stock_of(db, "pho-bo") == pho - 2


async def test_unknown_item_fails_with_unknown_item(
    system: Settings, db: asyncpg.Connection, redis_client: aioredis.Redis
) -> None:
    order = order_of(("no-such-dish", 1), ("pho-bo", 1))
    pho = await stock_of(db, "pho-bo")
    await asyncio.to_thread(tracking.send_order, system, order)
    final = await wait_final(redis_client, sent_id(order))
    assert (final.status, final.reason) == ("FAILED", "UNKNOWN_ITEM")
    assert "no-such-dish" in (final.detail or "")
    assert (await wait_row(db, sent_id(order)))["reason"] == "UNKNOWN_ITEM"
    assert await stock_of(db, "pho-bo") == pho


async def test_insufficient_stock_fails_and_leaves_stock_unchanged(
    system: Settings,
    db: asyncpg.Connection,
    redis_client: aioredis.Redis,
    test_item: tuple[str, Decimal],
) -> None:
    item_id, _ = test_item
    order = order_of((item_id, 11), ("pho-bo", 1))
    pho = await stock_of(db, "pho-bo")
    await asyncio.to_thread(tracking.send_order, system, order)
    final = await wait_final(redis_client, sent_id(order))
    assert (final.status, final.reason) == ("FAILED", "OUT_OF_STOCK")
    assert await stock_of(db, item_id) == 10
    assert await stock_of(db, "pho-bo") == pho


async def test_fifty_concurrent_orders_for_ten_in_stock(
    system: Settings,
    db: asyncpg.Connection,
    redis_client: aioredis.Redis,
    test_item: tuple[str, Decimal],
) -> None:
    item_id, _ = test_item
    orders = [order_of((item_id, 1), user=f"rush-{n}") for n in range(50)]
    await asyncio.gather(*(asyncio.to_thread(tracking.send_order, system, o) for o in orders))
    finals = await asyncio.gather(*(wait_final(redis_client, sent_id(o)) for o in orders))
    outcomes: list[tuple[str, str | None]] = [(f.status, f.reason) for f in finals]
    assert outcomes.count(("CONFIRMED", None)) == 10
    assert outcomes.count(("FAILED", "OUT_OF_STOCK")) == 40
    assert await stock_of(db, item_id) == 0
    for o in orders:
        await wait_row(db, sent_id(o))


async def test_a_burst_of_mixed_orders_shares_batches_and_each_gets_its_own_end(
    system: Settings,
    db: asyncpg.Connection,
    redis_client: aioredis.Redis,
    test_item: tuple[str, Decimal],
) -> None:
    """Sent at once, these travel in the same batch requests: one order's refusal (unknown
    item, declined card, no stock) must not touch its neighbours'."""
    item_id, _ = test_item  # 10 in stock
    fine = [order_of((item_id, 1), user=f"mix-ok-{n}") for n in range(4)]
    declined = [
        order_of((item_id, 1), user=f"mix-card-{n}").model_copy(
            update={"payment_token": "tok_declined"}
        )
        for n in range(3)
    ]
    unknown = [order_of(("no-such-dish", 1), user=f"mix-ghost-{n}") for n in range(3)]
    too_many = [order_of((item_id, 11), user=f"mix-big-{n}") for n in range(2)]
    orders = fine + declined + unknown + too_many
    await asyncio.gather(*(asyncio.to_thread(tracking.send_order, system, o) for o in orders))

    finals = {o.order_id: await wait_final(redis_client, o.order_id) for o in orders if o.order_id}

    def outcomes(group: list[ValidatedOrder]) -> set[tuple[str, str | None]]:
        return {(finals[o.order_id].status, finals[o.order_id].reason) for o in group if o.order_id}

    assert outcomes(fine) == {("CONFIRMED", None)}
    assert outcomes(declined) == {("FAILED", "PAYMENT_DECLINED")}
    assert outcomes(unknown) == {("FAILED", "UNKNOWN_ITEM")}
    assert outcomes(too_many) == {("FAILED", "OUT_OF_STOCK")}
    # The fine orders' units are gone; the declined ones' came back; the others took none.
    await wait_stock(db, item_id, 10 - len(fine))
    for o in fine:
        await wait_row(db, sent_id(o))


async def test_pricing_down_fails_order_and_releases_stock(
    system: Settings,
    db: asyncpg.Connection,
    redis_client: aioredis.Redis,
    test_item: tuple[str, Decimal],
) -> None:
    item_id, _ = test_item
    pricing = processes.ServiceProcess("pricing_service", system, E2E_ENV)
    was_running = pricing.is_running()
    await asyncio.to_thread(pricing.stop)
    try:
        order = order_of((item_id, 3))
        await asyncio.to_thread(tracking.send_order, system, order)
        # Pricing stays down: the order waits out the grace (DEPENDENCY_GRACE_SECONDS), then fails.
        grace = float(E2E_ENV["DEPENDENCY_GRACE_SECONDS"])
        final = await wait_final(redis_client, sent_id(order), timeout=grace + 30)
        assert (final.status, final.reason) == ("FAILED", "PRICING_UNAVAILABLE")
        assert "grace" in (final.detail or "")
        await wait_stock(db, item_id, 10)
        state = await db.fetchval(
            "SELECT state FROM stock_reservations WHERE order_id=$1", order.order_id
        )
        assert state == "RELEASED"
    finally:
        if was_running:
            await asyncio.to_thread(pricing.start)


async def test_bad_messages_go_to_dead_letter_and_the_next_order_still_flows(
    system: Settings, db: asyncpg.Connection, redis_client: aioredis.Redis, tail: Tail
) -> None:
    dead = tail(topics.DEAD_LETTER)
    bad_id = uuid.uuid4()
    await asyncio.to_thread(tracking.publish_raw, system, b"this is not json", "garbage-key")
    bad_order = orjson.dumps(
        {"order_id": str(bad_id), "user_id": "u", "items": [{"item_id": "pho-bo", "quantity": -2}]}
    )
    await asyncio.to_thread(tracking.publish_raw, system, bad_order, str(bad_id))
    good = order_of(("pho-bo", 1))
    await asyncio.to_thread(tracking.send_order, system, good)

    assert (await wait_final(redis_client, sent_id(good))).status == "CONFIRMED"
    failed = await wait_final(redis_client, bad_id)
    assert (failed.status, failed.reason) == ("FAILED", "INVALID_ORDER")
    assert "quantity" in (failed.detail or "")
    assert (await wait_row(db, bad_id))["status"] == "FAILED"

    await dead.until({str(bad_id)}, 1)
    letters = [DeadLetter.model_validate_json(v) for vals in dead.by_key.values() for v in vals]
    payloads = {letter.payload: letter for letter in letters}
    assert "this is not json" in payloads
    garbage = payloads["this is not json"]
    assert garbage.source_topic == topics.VALIDATED_ORDERS and garbage.error
    assert garbage.source_offset >= 0


async def test_an_oversized_message_is_parked_once_and_the_orders_behind_it_flow(
    system: Settings, redis_client: aioredis.Redis, tail: Tail
) -> None:
    """A 900 KB order and 150 KB of NUL bytes used to wedge every partition: their dead letters
    (payload as text and base64) outgrew Kafka's 1 MB limit and the batch was retried for ever,
    dead-lettering it again on each try. Now the letter keeps the payload's first 64 KiB."""
    dead = tail(topics.DEAD_LETTER)
    key = f"oversized-{uuid.uuid4().hex[:8]}"
    huge = b'{"user_id": "u", "items": [], "note": "' + b"x" * 900_000 + b'"}'
    nuls = b"\x00" * 150_000
    sent = [await asyncio.to_thread(tracking.publish_raw, system, raw, key) for raw in (huge, nuls)]
    # Behind them on the same partition (same key), an order that must go through.
    good = order_of(("pho-bo", 1)).model_copy(update={"order_id": uuid.uuid4()})
    await asyncio.to_thread(tracking.publish_raw, system, good.model_dump_json().encode(), key)
    assert (await wait_final(redis_client, sent_id(good))).status == "CONFIRMED"

    letters: dict[tuple[int, int], list[DeadLetter]] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(letters) < len(sent):
        await dead.poll()
        for value in (v for values in dead.by_key.values() for v in values):
            letter = DeadLetter.model_validate_json(value)
            where = (letter.source_partition, letter.source_offset)
            if where in sent:
                letters.setdefault(where, []).append(letter)
        dead.by_key.clear()
    await dead.poll(2.0)  # a retried batch would park them again: nothing more may come
    for value in (v for values in dead.by_key.values() for v in values):
        letter = DeadLetter.model_validate_json(value)
        assert (letter.source_partition, letter.source_offset) not in sent, "parked twice"
    assert sorted(letters) == sorted(sent)
    for (where, found), raw in zip(sorted(letters.items()), (huge, nuls), strict=True):
        assert len(found) == 1, where
        letter = found[0]
        assert letter.payload_truncated and letter.payload_bytes == len(raw)
        assert letter.payload_sha256 == hashlib.sha256(raw).hexdigest()
        assert len(letter.model_dump_json()) < 1_000_000


def test_following_an_order_sent_just_before_shows_every_transition(system: Settings) -> None:
    """What `make run` and `foodflow order send` print: the follower starts after the send and
    must still see v1 and v2 of an order that the saga may already have moved on."""
    since_ms = int(time.time() * 1000)
    order_id = tracking.send_order(system, order_of(("sushi-set", 1)))

    versions = [update.version for update in tracking.follow(system, order_id, since_ms)]

    assert versions == [1, 2, 3]
