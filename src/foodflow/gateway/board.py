"""The live order board and its figures, computed from status events alone (pure, no I/O).

Counters by status, orders per minute and end-to-end latency (an order's `created_at` to the
`updated_at` of its final event) come from the events the gateway has seen since it started;
nothing here reads a clock except through the `now` arguments, so tests drive time by hand.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from pydantic import BaseModel

from foodflow.contracts.orders import OrderStatus, OrderStatusUpdate, StatusChange

MAX_TRACKED_ORDERS = 5000
LATENCY_WINDOW = timedelta(minutes=5)
SERIES_MINUTES = 15


class OrderCard(BaseModel):
    """One order as the board shows it."""

    order_id: UUID
    user_id: str
    status: OrderStatus
    version: int
    reason: str | None = None
    detail: str | None = None
    total: Decimal | None = None
    currency: str | None = None
    created_at: datetime
    updated_at: datetime
    history: list[StatusChange]


class MinutePoint(BaseModel):
    """One minute of the charts: orders received, and latency of the orders finished in it."""

    minute: datetime
    orders: int
    finished: int
    p50_seconds: float | None
    p99_seconds: float | None


class BoardStats(BaseModel):
    counts: dict[str, int]
    orders_seen: int
    orders_per_minute: float
    latency_p50_seconds: float | None
    latency_p99_seconds: float | None
    latency_window_seconds: int
    series: list[MinutePoint]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (`q` in 0..100) of `values`; None when there are none."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError("q must be between 0 and 100")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def minute_of(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


class Board:
    """Orders by id (the newest `max_orders` kept) with running counts and latency samples."""

    def __init__(self, max_orders: int = MAX_TRACKED_ORDERS) -> None:
        self.max_orders = max_orders
        self._cards: OrderedDict[UUID, OrderCard] = OrderedDict()
        self._counts: dict[str, int] = {status.value: 0 for status in OrderStatus}
        # Kept as the events arrive, so that the figures of each second cost the same at any rate:
        self._last_minute: deque[datetime] = deque()  # created_at of new orders, last minute
        self._finished: deque[tuple[datetime, float]] = deque()  # (finished at, s), 5 minutes
        self._orders_by_minute: dict[datetime, int] = {}
        self._latency_by_minute: dict[datetime, list[float]] = {}
        self.orders_seen = 0

    def apply(self, update: OrderStatusUpdate) -> OrderCard | None:
        """Take one status event into account; None when it is stale or a duplicate."""
        card = self._cards.get(update.order_id)
        if card is not None and update.version <= card.version:
            if all(change.version != update.version for change in card.history):
                card.history.append(_change(update))
                card.history.sort(key=lambda change: change.version)
            return None
        if card is None:
            self.orders_seen += 1
            self._last_minute.append(update.created_at)
            minute = minute_of(update.created_at)
            self._orders_by_minute[minute] = self._orders_by_minute.get(minute, 0) + 1
            history = [_change(update)]
        else:
            self._counts[card.status.value] -= 1
            history = [*card.history, _change(update)]
        self._counts[update.status.value] = self._counts.get(update.status.value, 0) + 1
        # Built from a validated event: no need to validate it all again (one per event).
        new = OrderCard.model_construct(
            order_id=update.order_id,
            user_id=update.user_id,
            status=update.status,
            version=update.version,
            reason=update.reason.value if update.reason else None,
            detail=update.detail,
            total=update.price.total if update.price else (card.total if card else None),
            currency=update.price.currency if update.price else (card.currency if card else None),
            created_at=update.created_at,
            updated_at=update.updated_at,
            history=history,
        )
        self._cards[update.order_id] = new
        self._cards.move_to_end(update.order_id)
        if update.status.left_saga and (card is None or not card.status.left_saga):
            latency = (update.updated_at - update.created_at).total_seconds()
            self._finished.append((update.updated_at, max(0.0, latency)))
            finished_in = minute_of(update.updated_at)
            self._latency_by_minute.setdefault(finished_in, []).append(max(0.0, latency))
        while len(self._cards) > self.max_orders:
            self._cards.popitem(last=False)
        return new

    def get(self, order_id: UUID) -> OrderCard | None:
        return self._cards.get(order_id)

    def recent(self, limit: int = 100) -> list[OrderCard]:
        """The orders most recently changed, newest first."""
        cards = list(self._cards.values())[-limit:]
        cards.reverse()
        return cards

    def stats(self, now: datetime) -> BoardStats:
        """Counts, orders/minute and latency percentiles as of `now`."""
        self._forget_before(now)
        recent_latency = [s for _, s in self._finished]
        last_minute = sum(1 for at in self._last_minute if at <= now)
        return BoardStats(
            counts=dict(self._counts),
            orders_seen=self.orders_seen,
            orders_per_minute=float(last_minute),
            latency_p50_seconds=percentile(recent_latency, 50),
            latency_p99_seconds=percentile(recent_latency, 99),
            latency_window_seconds=int(LATENCY_WINDOW.total_seconds()),
            series=minute_series(self._orders_by_minute, self._latency_by_minute, now),
        )

    def _forget_before(self, now: datetime) -> None:
        """Drop what no figure as of `now` needs (events arrive roughly in time order)."""
        while self._last_minute and self._last_minute[0] < now - timedelta(minutes=1):
            self._last_minute.popleft()
        while self._finished and self._finished[0][0] < now - LATENCY_WINDOW:
            self._finished.popleft()
        oldest = minute_of(now) - timedelta(minutes=SERIES_MINUTES - 1)
        for by_minute in (self._orders_by_minute, self._latency_by_minute):
            for minute in [m for m in by_minute if m < oldest]:
                del by_minute[minute]


def minute_series(
    orders: Mapping[datetime, int],
    latencies: Mapping[datetime, Sequence[float]],
    now: datetime,
    minutes: int = SERIES_MINUTES,
) -> list[MinutePoint]:
    """One point per minute for the last `minutes` minutes (oldest first, the current one last),
    from orders received per minute and the latencies of the orders finished in each minute."""
    last = minute_of(now)
    first = last - timedelta(minutes=minutes - 1)
    points = []
    for i in range(minutes):
        minute = first + timedelta(minutes=i)
        samples = latencies.get(minute, [])
        points.append(
            MinutePoint(
                minute=minute,
                orders=orders.get(minute, 0),
                finished=len(samples),
                p50_seconds=percentile(samples, 50),
                p99_seconds=percentile(samples, 99),
            )
        )
    return points


def _change(update: OrderStatusUpdate) -> StatusChange:
    return StatusChange.model_construct(
        status=update.status, version=update.version, at=update.updated_at, reason=update.reason
    )
