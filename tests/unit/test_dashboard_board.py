"""The dashboard's figures, computed from status events only (no servers)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from foodflow.contracts.orders import FailureReason, OrderStatus, OrderStatusUpdate
from foodflow.contracts.pricing import PriceBreakdown
from foodflow.gateway.board import Board, minute_series, percentile
from foodflow.gateway.dashboard import sse_event
from foodflow.gateway.feed import Broadcaster

T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def event(
    order_id: uuid.UUID,
    status: OrderStatus,
    version: int,
    after: float,
    *,
    created: datetime = T0,
    reason: FailureReason | None = None,
    total: str | None = None,
) -> OrderStatusUpdate:
    price = None
    if total is not None:
        d = Decimal(total)
        zero = Decimal("0")
        price = PriceBreakdown(
            subtotal=d, discount=zero, delivery_fee=zero, small_order_fee=zero, tax=zero, total=d
        )
    return OrderStatusUpdate(
        order_id=order_id,
        user_id="u1",
        status=status,
        version=version,
        reason=reason,
        price=price,
        created_at=created,
        updated_at=created + timedelta(seconds=after),
    )


def test_percentile_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 99) == 3.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_counts_follow_each_order_through_its_statuses() -> None:
    board = Board()
    a, b = uuid.uuid4(), uuid.uuid4()
    board.apply(event(a, OrderStatus.RECEIVED, 1, 0))
    board.apply(event(b, OrderStatus.RECEIVED, 1, 0))
    board.apply(event(a, OrderStatus.PROCESSING, 2, 0.1, total="45.09"))
    card = board.apply(event(a, OrderStatus.CONFIRMED, 3, 0.5))
    board.apply(event(b, OrderStatus.FAILED, 2, 0.2, reason=FailureReason.OUT_OF_STOCK))
    stats = board.stats(T0 + timedelta(seconds=1))
    assert stats.counts["CONFIRMED"] == 1
    assert stats.counts["FAILED"] == 1
    assert stats.counts["RECEIVED"] == 0
    assert stats.counts["PROCESSING"] == 0
    assert stats.orders_seen == 2
    assert card is not None and card.total == Decimal("45.09")  # kept from PROCESSING
    assert [c.version for c in card.history] == [1, 2, 3]
    assert board.get(b).reason == "OUT_OF_STOCK"  # type: ignore[union-attr]
    assert [c.order_id for c in board.recent()] == [b, a]


def test_stale_and_duplicate_events_change_nothing() -> None:
    board = Board()
    a = uuid.uuid4()
    board.apply(event(a, OrderStatus.RECEIVED, 1, 0))
    board.apply(event(a, OrderStatus.CONFIRMED, 3, 1.0))
    assert board.apply(event(a, OrderStatus.CONFIRMED, 3, 1.0)) is None
    assert board.apply(event(a, OrderStatus.PROCESSING, 2, 0.5)) is None  # late, older
    stats = board.stats(T0 + timedelta(seconds=2))
    assert stats.counts["CONFIRMED"] == 1 and stats.counts["PROCESSING"] == 0
    assert stats.latency_p50_seconds == 1.0
    # the late event still fills the gap in the timeline
    assert [c.version for c in board.get(a).history] == [1, 2, 3]  # type: ignore[union-attr]


def test_latency_percentiles_over_the_window_and_orders_per_minute() -> None:
    board = Board()
    for i in range(100):
        oid = uuid.uuid4()
        created = T0 + timedelta(seconds=i * 0.5)
        board.apply(event(oid, OrderStatus.RECEIVED, 1, 0, created=created))
        board.apply(event(oid, OrderStatus.CONFIRMED, 2, (i + 1) / 100, created=created))
    now = T0 + timedelta(seconds=55)
    stats = board.stats(now)
    assert stats.latency_p50_seconds == pytest.approx(0.50)
    assert stats.latency_p99_seconds == pytest.approx(0.99)
    assert stats.orders_per_minute == 100
    assert sum(p.orders for p in stats.series) == 100
    assert stats.series[-1].minute == T0
    # Ten minutes later the latency window (5 min) is empty; the 15-minute series still has them.
    later = board.stats(T0 + timedelta(minutes=10))
    assert later.latency_p50_seconds is None
    assert later.orders_per_minute == 0
    assert sum(p.orders for p in later.series) == 100


def test_minute_series_has_one_point_per_minute_oldest_first() -> None:
    orders = {T0 - timedelta(minutes=2): 1, T0: 2, T0 - timedelta(minutes=5): 7}
    latencies = {T0: [0.4, 0.2], T0 - timedelta(minutes=9): [3.0]}
    series = minute_series(orders, latencies, T0 + timedelta(seconds=45), minutes=3)
    assert [p.minute for p in series] == [T0 - timedelta(minutes=m) for m in (2, 1, 0)]
    assert [p.orders for p in series] == [1, 0, 2]
    assert series[-1].finished == 2
    assert series[-1].p50_seconds == 0.2 and series[-1].p99_seconds == 0.4
    assert series[0].p50_seconds is None


def test_board_forgets_the_oldest_orders_beyond_its_size() -> None:
    board = Board(max_orders=3)
    ids = [uuid.uuid4() for _ in range(5)]
    for oid in ids:
        board.apply(event(oid, OrderStatus.RECEIVED, 1, 0))
    assert [c.order_id for c in board.recent()] == ids[:1:-1]
    assert board.stats(T0).counts["RECEIVED"] == 5  # counts are not forgotten


async def test_broadcaster_drops_a_subscriber_that_falls_behind() -> None:
    hub = Broadcaster(queue_size=2)
    fast, slow = hub.subscribe(), hub.subscribe()
    hub.publish("order", {"n": 1})
    assert await fast.next(timeout=1) == ("order", {"n": 1})
    hub.publish("order", {"n": 2})
    hub.publish("order", {"n": 3})  # slow now holds 3 > 2: dropped
    assert slow.dropped.is_set() and len(hub) == 1
    assert await slow.next(timeout=1) is None
    assert await fast.next(timeout=1) == ("order", {"n": 2})
    assert await fast.next(timeout=0.05) == ("order", {"n": 3})
    assert await asyncio.wait_for(fast.next(timeout=0.05), 1) is None  # nothing more: times out


def test_sse_event_is_one_data_line() -> None:
    text = sse_event("order", {"status": "CONFIRMED", "detail": "a\nb"})
    assert text == 'event: order\ndata: {"status":"CONFIRMED","detail":"a\\nb"}\n\n'
