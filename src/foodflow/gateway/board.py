"""The live order board and its figures, computed from status events alone (pure, no I/O).

Latency is counted from the moment an order was published on `validated_orders` (the Kafka
timestamp the order manager puts on its events as `published_at`; `created_at`, when the saga
took the order in, for events without it), so the time an order queued in Kafka is part of it.
Each status has its own latency (published → that status); "end to end" is published → the
status where the saga let go of the order (CONFIRMED, FAILED, CANCELLED).

Figures live in `BUCKET`-wide time buckets over the last `SERIES_SPAN`; at gateway start the
board is refilled from PostgreSQL (`restore`), so a restart keeps the charts. Nothing here
reads a clock except through the `now` arguments, so tests drive time by hand.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from operator import itemgetter
from uuid import UUID

from pydantic import BaseModel

from foodflow.contracts.orders import OrderSnapshot, OrderStatus, OrderStatusUpdate, StatusChange

MAX_TRACKED_ORDERS = 5000
LATENCY_WINDOW = timedelta(minutes=5)
BUCKET = timedelta(seconds=10)
SERIES_SPAN = timedelta(minutes=15)
# Latency samples kept per status for the window figures: enough for 160 orders/s over the
# window; beyond that the oldest go first (the figures then cover a shorter, recent stretch).
MAX_SAMPLES_PER_STATUS = 50_000
# Users whose orders are test traffic (bench, chaos, the test suite): counted in the figures
# (they load the system like any order) but kept off the list of orders. Decided by the user
# id alone: the tools choose theirs (`bench-user-7`, sent straight to Kafka), while a customer's
# id is the gateway's UUID: no one who signs up can make their orders invisible to operators
# (an email is the customer's choice: `test-x@…` must not hide a fraudster's orders).
TEST_PREFIXES = ("bench-", "chaos-", "test-")


_SECONDS = itemgetter(1)  # the seconds of a (time, seconds) sample


def is_test_user(user_id: str) -> bool:
    """A test user: its id, which no customer chooses, starts with a test prefix."""
    return user_id.startswith(TEST_PREFIXES)


class OrderCard(BaseModel):
    """One order as the board shows it."""

    order_id: UUID
    user_id: str
    # "Name <email>" of a registered customer; None for orders sent by other clients.
    customer: str | None = None
    test: bool = False
    status: OrderStatus
    version: int
    reason: str | None = None
    detail: str | None = None
    total: Decimal | None = None
    currency: str | None = None
    created_at: datetime
    published_at: datetime | None = None
    updated_at: datetime
    history: list[StatusChange]


class SeriesPoint(BaseModel):
    """One time bucket of the charts: orders received, orders finished, and the end-to-end
    latency percentiles of the orders finished in it."""

    at: datetime
    received: int
    finished: int
    p50_seconds: float | None
    p90_seconds: float | None
    p99_seconds: float | None


class StatusLatency(BaseModel):
    """Published → this status, over the latency window."""

    status: OrderStatus
    count: int
    p50_seconds: float | None
    p90_seconds: float | None
    p99_seconds: float | None


class BoardStats(BaseModel):
    # orders_seen and test_orders_seen: orders received over the last SERIES_SPAN.
    # Orders by current status: every stored order (PostgreSQL, `counts_source` "postgres"),
    # or those this gateway has seen when PostgreSQL could not be counted ("events").
    counts: dict[str, int]
    counts_source: str
    orders_seen: int
    test_orders_seen: int
    orders_per_minute: float
    latency_p50_seconds: float | None
    latency_p90_seconds: float | None
    latency_p99_seconds: float | None
    latency_window_seconds: int
    by_status: list[StatusLatency]
    bucket_seconds: int
    series: list[SeriesPoint]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (`q` in 0..100) of `values`; None when there are none."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError("q must be between 0 and 100")
    ordered = sorted(values)
    return _ranked(ordered, q)


def _ranked(ordered: Sequence[float], q: float) -> float | None:
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def bucket_of(at: datetime, width: timedelta = BUCKET) -> datetime:
    """The start of `at`'s bucket (buckets are aligned on the epoch)."""
    seconds = int(width.total_seconds())
    epoch = at.timestamp()
    return datetime.fromtimestamp(epoch - epoch % seconds, at.tzinfo)


@dataclass
class _Bucket:
    received: int = 0
    test: int = 0  # of them test traffic
    latencies: list[float] = field(default_factory=list)
    point: SeriesPoint | None = None  # computed once the bucket is closed, then kept


def start_of(update: OrderStatusUpdate) -> datetime:
    """Where an order's latency starts: its publish time, else when the saga took it in."""
    return update.published_at or update.created_at


class Board:
    """Orders by id (the newest `max_orders` kept) with running counts and latency samples."""

    def __init__(self, max_orders: int = MAX_TRACKED_ORDERS) -> None:
        self.max_orders = max_orders
        self._cards: OrderedDict[UUID, OrderCard] = OrderedDict()
        self._counts: dict[str, int] = {status.value: 0 for status in OrderStatus}
        self.stored_counts: dict[str, int] | None = None  # set by the dashboard's refresher
        self._received: deque[datetime] = deque()  # when orders were received, last minute
        self._by_status: dict[OrderStatus, deque[tuple[datetime, float]]] = {
            s: deque(maxlen=MAX_SAMPLES_PER_STATUS) for s in OrderStatus
        }
        self._finished: deque[tuple[datetime, float]] = deque(maxlen=MAX_SAMPLES_PER_STATUS)
        self._buckets: dict[datetime, _Bucket] = {}
        self.orders_seen = 0
        self.test_orders_seen = 0

    # --- taking events in ------------------------------------------------------------------

    def apply(
        self, update: OrderStatusUpdate, customer: str | None = None, test: bool = False
    ) -> OrderCard | None:
        """Take one status event into account; None when it is stale or a duplicate."""
        card = self._cards.get(update.order_id)
        if card is not None and update.version <= card.version:
            if all(change.version != update.version for change in card.history):
                card.history.append(_change(update))
                card.history.sort(key=lambda change: change.version)
            return None
        if card is None:
            self._count_new(update, test)
            history = [_change(update)]
        else:
            self._counts[card.status.value] -= 1
            history = [*card.history, _change(update)]
            customer, test = customer or card.customer, test or card.test
        self._counts[update.status.value] = self._counts.get(update.status.value, 0) + 1
        new = self._card(update, card, history, customer, test)
        self._sample(update.status, update.updated_at, start_of(update))
        if update.status.left_saga and (card is None or not card.status.left_saga):
            self._finish(update.updated_at, start_of(update))
        return new

    def restore(self, snapshots: Iterable[OrderSnapshot], test_users: set[str]) -> int:
        """Refill the board from stored orders (oldest change first), at start: their cards,
        and a latency sample for each step of their timelines. Orders already on the board
        (live events came first) are left as they are. Returns how many were restored."""
        restored = 0
        for snap in snapshots:
            if snap.order_id in self._cards:
                continue
            test = snap.user_id in test_users or is_test_user(snap.user_id)
            self._count_new(snap, test, at=snap.history[0].at if snap.history else None)
            self._counts[snap.status.value] = self._counts.get(snap.status.value, 0) + 1
            history = sorted(snap.history, key=lambda change: change.version)
            self._card(snap, None, history or [_change(snap)], None, test)
            start = start_of(snap)
            for change in history:
                self._sample(change.status, change.at, start)
            ended = next((c for c in history if c.status.left_saga), None)
            if ended is not None:
                self._finish(ended.at, start)
            restored += 1
        return restored

    def _count_new(self, update: OrderStatusUpdate, test: bool, at: datetime | None = None) -> None:
        self.orders_seen += 1
        self.test_orders_seen += test
        received = at or update.updated_at
        self._received.append(received)
        bucket = self._bucket(received)
        bucket.received += 1
        bucket.test += test

    def _card(
        self,
        update: OrderStatusUpdate,
        card: OrderCard | None,
        history: list[StatusChange],
        customer: str | None,
        test: bool,
    ) -> OrderCard:
        # Built from a validated event: no need to validate it all again (one per event).
        new = OrderCard.model_construct(
            order_id=update.order_id,
            user_id=update.user_id,
            customer=customer,
            test=test,
            status=update.status,
            version=update.version,
            reason=update.reason.value if update.reason else None,
            detail=update.detail,
            total=update.price.total if update.price else (card.total if card else None),
            currency=update.price.currency if update.price else (card.currency if card else None),
            created_at=update.created_at,
            published_at=update.published_at,
            updated_at=update.updated_at,
            history=history,
        )
        self._cards[update.order_id] = new
        self._cards.move_to_end(update.order_id)
        while len(self._cards) > self.max_orders:
            self._cards.popitem(last=False)
        return new

    def _sample(self, status: OrderStatus, at: datetime, start: datetime) -> None:
        self._by_status[status].append((at, max(0.0, (at - start).total_seconds())))

    def _finish(self, at: datetime, start: datetime) -> None:
        latency = max(0.0, (at - start).total_seconds())
        self._finished.append((at, latency))
        bucket = self._bucket(at)
        bucket.latencies.append(latency)
        bucket.point = None  # a late sample reopens a closed bucket

    def _bucket(self, at: datetime) -> _Bucket:
        key = bucket_of(at)
        found = self._buckets.get(key)
        if found is None:
            found = self._buckets[key] = _Bucket()
        return found

    # --- reading -------------------------------------------------------------------------------

    def get(self, order_id: UUID) -> OrderCard | None:
        return self._cards.get(order_id)

    def recent(self, limit: int = 100, *, include_test: bool = False) -> list[OrderCard]:
        """The orders most recently changed, newest first (test traffic left out unless asked)."""
        out: list[OrderCard] = []
        for card in reversed(self._cards.values()):
            if include_test or not card.test:
                out.append(card)
                if len(out) >= limit:
                    break
        return out

    def stats(self, now: datetime) -> BoardStats:
        """Counts, orders/minute and latency percentiles as of `now`."""
        # Every 2 s over up to 50,000 samples a status: what is kept is the window exactly
        # (`_forget_before`), so the samples are only sorted, at C speed (itemgetter).
        self._forget_before(now)
        finished = sorted(map(_SECONDS, self._finished))
        by_status = []
        for status, samples in self._by_status.items():
            values = sorted(map(_SECONDS, samples))
            if values:
                by_status.append(
                    StatusLatency(
                        status=status,
                        count=len(values),
                        p50_seconds=_ranked(values, 50),
                        p90_seconds=_ranked(values, 90),
                        p99_seconds=_ranked(values, 99),
                    )
                )
        stored = self.stored_counts
        return BoardStats(
            counts=dict(stored) if stored is not None else dict(self._counts),
            counts_source="postgres" if stored is not None else "events",
            # Over the series' span, like the charts: the same before and after a restart.
            orders_seen=sum(b.received for b in self._buckets.values()),
            test_orders_seen=sum(b.test for b in self._buckets.values()),
            orders_per_minute=float(len(self._received)),
            latency_p50_seconds=_ranked(finished, 50),
            latency_p90_seconds=_ranked(finished, 90),
            latency_p99_seconds=_ranked(finished, 99),
            latency_window_seconds=int(LATENCY_WINDOW.total_seconds()),
            by_status=by_status,
            bucket_seconds=int(BUCKET.total_seconds()),
            series=self._series(now),
        )

    def _series(self, now: datetime) -> list[SeriesPoint]:
        last = bucket_of(now)
        count = int(SERIES_SPAN / BUCKET)
        points = []
        for i in range(count):
            at = last - BUCKET * (count - 1 - i)
            bucket = self._buckets.get(at)
            if bucket is None:
                points.append(series_point(at, 0, []))
                continue
            point = bucket.point or series_point(at, bucket.received, bucket.latencies)
            if at < last - BUCKET:  # closed a while ago: computed once
                bucket.point = point
            points.append(point)
        return points

    def _forget_before(self, now: datetime) -> None:
        """Drop what no figure as of `now` needs (events arrive roughly in time order)."""
        while self._received and self._received[0] < now - timedelta(minutes=1):
            self._received.popleft()
        window_start = now - LATENCY_WINDOW
        for samples in (self._finished, *self._by_status.values()):
            while samples and samples[0][0] < window_start:
                samples.popleft()
        oldest = bucket_of(now) - SERIES_SPAN
        for at in [at for at in self._buckets if at <= oldest]:
            del self._buckets[at]


def series_point(at: datetime, received: int, latencies: Sequence[float]) -> SeriesPoint:
    ordered = sorted(latencies)
    # Built from values computed here: constructed, not validated (90 of them every 2 s).
    return SeriesPoint.model_construct(
        at=at,
        received=received,
        finished=len(ordered),
        p50_seconds=_ranked(ordered, 50),
        p90_seconds=_ranked(ordered, 90),
        p99_seconds=_ranked(ordered, 99),
    )


def merge_history(*histories: Iterable[StatusChange]) -> list[StatusChange]:
    """One timeline from several partial ones (PostgreSQL's, the live board's), by version."""
    by_version: dict[int, StatusChange] = {}
    for history in histories:
        for change in history:
            by_version.setdefault(change.version, change)
    return [by_version[v] for v in sorted(by_version)]


def counts_of(rows: Mapping[str, int]) -> dict[str, int]:
    """Every status with its count (0 for those with no row)."""
    return {status.value: int(rows.get(status.value, 0)) for status in OrderStatus}


def _change(update: OrderStatusUpdate) -> StatusChange:
    return StatusChange.model_construct(
        status=update.status, version=update.version, at=update.updated_at, reason=update.reason
    )
