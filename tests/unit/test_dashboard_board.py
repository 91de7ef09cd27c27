"""The dashboard's figures, computed from status events only (no servers)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from foodflow.contracts.orders import (
    FailureReason,
    OrderSnapshot,
    OrderStatus,
    OrderStatusUpdate,
    StatusChange,
)
from foodflow.contracts.pricing import PriceBreakdown
from foodflow.gateway.board import BUCKET, Board, bucket_of, is_test_user, percentile
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
    assert sum(p.received for p in stats.series) == 100
    assert sum(p.finished for p in stats.series) == 100
    assert stats.series[-1].at == bucket_of(now) and len(stats.series) == 90
    # Ten minutes later the latency window (5 min) is empty; the 15-minute series still has them.
    later = board.stats(T0 + timedelta(minutes=10))
    assert later.latency_p50_seconds is None
    assert later.orders_per_minute == 0
    assert sum(p.received for p in later.series) == 100


def test_latency_starts_when_the_order_was_published() -> None:
    """An order that queued 3 s in Kafka before the saga took it in is 3 s slower than the
    saga's own time: the dashboard used to show only the latter."""
    board = Board()
    oid = uuid.uuid4()
    queued = event(oid, OrderStatus.RECEIVED, 1, 0).model_copy(
        update={"published_at": T0 - timedelta(seconds=3)}
    )
    board.apply(queued)
    board.apply(
        event(oid, OrderStatus.PROCESSING, 2, 0.2).model_copy(
            update={"published_at": T0 - timedelta(seconds=3)}
        )
    )
    board.apply(
        event(oid, OrderStatus.CONFIRMED, 3, 0.5).model_copy(
            update={"published_at": T0 - timedelta(seconds=3)}
        )
    )
    stats = board.stats(T0 + timedelta(seconds=1))
    assert stats.latency_p50_seconds == pytest.approx(3.5)
    by_status = {s.status: s for s in stats.by_status}
    assert by_status[OrderStatus.RECEIVED].p50_seconds == pytest.approx(3.0)
    assert by_status[OrderStatus.PROCESSING].p90_seconds == pytest.approx(3.2)
    assert by_status[OrderStatus.CONFIRMED].p99_seconds == pytest.approx(3.5)
    # an event without the field (written before it existed) starts at created_at
    old = uuid.uuid4()
    board.apply(event(old, OrderStatus.RECEIVED, 1, 0))
    board.apply(event(old, OrderStatus.FAILED, 2, 0.25, reason=FailureReason.OUT_OF_STOCK))
    assert board.stats(T0 + timedelta(seconds=1)).latency_p50_seconds == pytest.approx(0.25)


def test_series_buckets_hold_throughput_and_percentiles_of_their_finished_orders() -> None:
    board = Board()
    for i in range(20):
        oid = uuid.uuid4()
        created = T0 + timedelta(seconds=i)  # 10 in each of two buckets
        board.apply(event(oid, OrderStatus.RECEIVED, 1, 0, created=created))
        board.apply(event(oid, OrderStatus.CONFIRMED, 2, 0.05 * (i % 10 + 1), created=created))
    series = board.stats(T0 + timedelta(seconds=25)).series
    first, second = series[-3], series[-2]
    assert (first.at, second.at) == (T0, T0 + BUCKET)
    assert (first.received, first.finished) == (10, 10)
    assert first.p50_seconds == pytest.approx(0.25) and first.p90_seconds == pytest.approx(0.45)
    assert first.p99_seconds == pytest.approx(0.5)
    assert series[-1].received == 0 and series[-1].p50_seconds is None


def test_a_restarted_board_is_refilled_from_stored_snapshots() -> None:
    live, restarted = Board(), Board()
    snapshots = []
    for i in range(5):
        oid = uuid.uuid4()
        created = T0 + timedelta(seconds=i)
        steps = [
            event(oid, OrderStatus.RECEIVED, 1, 0, created=created),
            event(oid, OrderStatus.PROCESSING, 2, 0.2, created=created),
            event(oid, OrderStatus.CONFIRMED, 3, 0.4 + i / 10, created=created),
        ]
        for step in steps:
            live.apply(step)
        snapshots.append(
            OrderSnapshot(
                **steps[-1].model_dump(),
                history=[
                    StatusChange(status=s.status, version=s.version, at=s.updated_at) for s in steps
                ],
            )
        )
    assert restarted.restore(snapshots, test_users=set()) == 5
    now = T0 + timedelta(seconds=30)
    before, after = live.stats(now), restarted.stats(now)
    assert after.model_dump() == before.model_dump()
    # a live event of a restored order moves it on without counting it twice
    oid = snapshots[0].order_id
    moved = event(oid, OrderStatus.COURIER_ASSIGNED, 4, 5, created=snapshots[0].created_at)
    assert restarted.apply(moved) is not None
    assert restarted.orders_seen == 5
    assert restarted.restore(snapshots, test_users=set()) == 0  # already on the board


def test_test_traffic_is_counted_but_not_listed() -> None:
    board = Board()
    mine, bench = uuid.uuid4(), uuid.uuid4()
    board.apply(event(mine, OrderStatus.RECEIVED, 1, 0))
    board.apply(event(bench, OrderStatus.RECEIVED, 1, 0), test=True)
    assert [c.order_id for c in board.recent()] == [mine]
    assert {c.order_id for c in board.recent(include_test=True)} == {mine, bench}
    stats = board.stats(T0 + timedelta(seconds=1))
    assert (stats.orders_seen, stats.test_orders_seen) == (2, 1)
    assert is_test_user("bench-user-7") and is_test_user("chaos-1") and is_test_user("test-x")
    assert not is_test_user(str(uuid.uuid4())) and not is_test_user("user-001")


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
