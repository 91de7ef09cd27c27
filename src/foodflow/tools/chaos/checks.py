"""The invariants, checked against PostgreSQL, Redis, the payment ledger and the topics after a
chaos run, and the stalls measured after each fault.

Pure functions over what was read: each takes plain data and returns the offending order ids
(or message coordinates, or seconds), so the rules themselves are unit-tested without any server.

PostgreSQL holds the truth: `orders` is the record of final orders, `order_state` every order's
current state. Redis is a cache that a FLUSHALL may empty at any moment: an order missing from
it is fine, and only a cached status that is there must agree.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, pairwise

from foodflow.contracts.orders import FailureReason, OrderStatus

# Statuses in which an order holds its stock for good: it left the saga confirmed and was not
# cancelled since (a cancellation gives the stock back).
STOCK_TAKEN = frozenset(s.value for s in OrderStatus.LEFT_SAGA - OrderStatus.ABORTED)
# Statuses after which nothing happens to an order.
TERMINAL = frozenset(s.value for s in OrderStatus.TERMINAL)
# Statuses in which an order must not have cost the customer anything.
NOT_CHARGED = frozenset(s.value for s in OrderStatus.ABORTED)
# Reasons an order fails because something it needed was away (or did not answer in time).
UNAVAILABLE = frozenset(
    r.value
    for r in (
        FailureReason.INVENTORY_UNAVAILABLE,
        FailureReason.PRICING_UNAVAILABLE,
        FailureReason.PAYMENT_UNAVAILABLE,
        FailureReason.TIMED_OUT,
    )
)
# Where a message sits: (topic, partition, offset).
Coordinates = tuple[str, int, int]


@dataclass
class Observed:
    """What the run saw, per order id (as str)."""

    expected: dict[str, dict[str, int]]  # order → {item: quantity} of each accepted order
    expected_invalid: set[str]  # orders sent malformed but with an id: must end FAILED
    final_statuses: frozenset[str]
    postgres: dict[str, str] = field(default_factory=dict)  # order → status in `orders`
    state: dict[str, str] = field(default_factory=dict)  # order → status in `order_state`
    cache: dict[str, str] = field(default_factory=dict)  # order → status cached in Redis
    events: dict[str, list[tuple[int, str, str | None]]] = field(default_factory=dict)
    final_events: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    initial_stock: dict[str, int] = field(default_factory=dict)
    current_stock: dict[str, int] = field(default_factory=dict)
    held_reservations: dict[str, dict[str, int]] = field(default_factory=dict)  # RESERVED
    reasons: dict[str, str | None] = field(default_factory=dict)  # order → reason in `orders`
    totals: dict[str, int | None] = field(default_factory=dict)  # order → total (cents)
    charges: dict[str, int] = field(default_factory=dict)  # order → captured - refunded, cents
    sent_at: dict[str, float] = field(default_factory=dict)  # order → epoch s the broker took it
    final_at: dict[str, float] = field(default_factory=dict)  # order → first final event, epoch s
    partitions: dict[str, int] = field(default_factory=dict)  # order → its message's partition
    # Orders sent with a delivery address (`--kitchens`): a kitchen and a courier take them on
    # after CONFIRMED, and they are done only once DELIVERED, CANCELLED or FAILED.
    to_deliver: set[str] = field(default_factory=set)
    refunds: dict[str, int] = field(default_factory=dict)  # order → REFUND operations in the ledger


@dataclass(frozen=True)
class Window:
    """A stretch of wall-clock time (epoch seconds)."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def overlaps(self, other: Window) -> bool:
        return self.start <= other.end and other.start <= self.end


def all_orders(o: Observed) -> set[str]:
    return set(o.expected) | o.expected_invalid


def done(o: Observed, oid: str, status: str | None) -> bool:
    """Whether `status` is as far as the order goes: final for the run, and for an order to
    deliver also terminal (a kitchen or a courier may still move one that left the saga)."""
    if status not in o.final_statuses:
        return False
    return oid not in o.to_deliver or status in TERMINAL


def lost(o: Observed) -> list[str]:
    """Invariant 1: every accepted order has a final state in `orders` and in `order_state`."""
    return sorted(
        oid
        for oid in all_orders(o)
        if not done(o, oid, o.postgres.get(oid)) or not done(o, oid, o.state.get(oid))
    )


def duplicated(o: Observed) -> list[str]:
    """Invariant 2: one version means one transition; a replay may repeat it, never vary it."""
    bad = []
    for oid, events in o.events.items():
        by_version: dict[int, set[tuple[str, str | None]]] = defaultdict(set)
        for version, status, reason in events:
            by_version[version].add((status, reason))
        if any(len(kinds) > 1 for kinds in by_version.values()):
            bad.append(oid)
    return sorted(bad)


def stuck(o: Observed) -> list[str]:
    """Invariant 4: nothing left in a non-final state (of those that got any state at all),
    in PostgreSQL or in the cache."""
    return sorted(
        oid
        for oid in all_orders(o)
        if any(
            oid in where and not done(o, oid, where[oid])
            for where in (o.postgres, o.state, o.cache)
        )
    )


def inconsistent(o: Observed) -> list[str]:
    """Invariant 5: `orders`, `order_state`, the last status event and the Redis cache (where
    it still holds the order: a flushed cache forgets, it must not contradict) agree."""
    bad = []
    for oid in all_orders(o):
        events = o.events.get(oid, [])
        last = max(events)[1] if events else None
        seen = {o.postgres.get(oid), o.state.get(oid), last}
        if oid in o.cache:
            seen.add(o.cache[oid])
        if len(seen) != 1:
            bad.append(oid)
    return sorted(bad)


def stock_drift(o: Observed) -> dict[str, int]:
    """Invariant 3: initial = current + taken by confirmed orders + held by orders in flight."""
    taken: Counter[str] = Counter()
    for oid, items in o.expected.items():
        if o.postgres.get(oid) in STOCK_TAKEN:
            taken.update(items)
    held: Counter[str] = Counter()
    for oid, items in o.held_reservations.items():
        if o.postgres.get(oid) not in o.final_statuses:
            held.update(items)
    drift = {
        item: initial - o.current_stock.get(item, 0) - taken[item] - held[item]
        for item, initial in o.initial_stock.items()
    }
    return {item: d for item, d in drift.items() if d != 0}


def courier_for_rejected(o: Observed) -> list[str]:
    """Invariant 8: no courier is sent for an order its restaurant rejected (or left
    unanswered): an order with RESTAURANT_REJECTED among its events has no COURIER_ASSIGNED."""
    rejected, assigned = OrderStatus.RESTAURANT_REJECTED.value, OrderStatus.COURIER_ASSIGNED.value
    return sorted(
        oid
        for oid, events in o.events.items()
        if {rejected, assigned} <= {status for _, status, _ in events}
    )


def refunded_twice(o: Observed) -> list[str]:
    """Invariant 9: a refund happens once: at most one REFUND operation per order in the
    payment ledger, however many times its cancellation was tried or resumed."""
    return sorted(oid for oid, count in o.refunds.items() if count > 1)


def invalid_not_failed(o: Observed) -> list[str]:
    return sorted(oid for oid in o.expected_invalid if o.postgres.get(oid) != "FAILED")


def charged_not_persisted(o: Observed) -> list[str]:
    """Invariant 6: the ledger and the record agree. A net charge (captured minus refunded)
    needs an `orders` row; a confirmed order (or one delivered since) was charged exactly its
    total; a FAILED or CANCELLED one was charged nothing (or refunded in full)."""
    bad = []
    for oid in set(all_orders(o)) | set(o.charges):
        net = o.charges.get(oid, 0)
        status = o.postgres.get(oid)
        if status is None:
            wrong = net != 0
        elif status in STOCK_TAKEN:
            wrong = o.totals.get(oid) is None or net != o.totals[oid]
        elif status in NOT_CHARGED:
            wrong = net != 0
        else:
            wrong = False  # not final: `stuck` reports it
        if wrong:
            bad.append(oid)
    return sorted(bad)


def failed_by_short_fault(o: Observed, faults: Sequence[Window], grace: float) -> list[str]:
    """Invariant 7: no order FAILED for a dependency's absence (or a timeout) while only faults
    shorter than the grace were under way. An order counts when its life (sent → final)
    overlaps a fault and every fault it overlaps lasted less than `grace` seconds: a longer
    one may rightly end orders FAILED."""
    bad = []
    for oid in all_orders(o):
        if o.postgres.get(oid) != "FAILED" or o.reasons.get(oid) not in UNAVAILABLE:
            continue
        life = Window(o.sent_at.get(oid, -math.inf), o.final_at.get(oid, math.inf))
        during = [w for w in faults if w.overlaps(life)]
        if during and all(w.seconds < grace for w in during):
            bad.append(oid)
    return sorted(bad)


def stall_segments(o: Observed, since: float, until: float) -> list[Window]:
    """Every stretch within [since, until] in which, on some partition of the orders' topic,
    an order was waiting (sent, not yet final) and none of that partition's orders reached a
    final state. Per partition, so that one wedged partition shows while the others flow."""
    by_partition: dict[int, dict[str, float]] = defaultdict(dict)
    for oid, sent in o.sent_at.items():
        by_partition[o.partitions.get(oid, 0)][oid] = sent
    return [
        segment
        for sent_at in by_partition.values()
        for segment in _waits(sent_at, o.final_at, since, until)
    ]


def _waits(
    sent_at: Mapping[str, float], final_at: Mapping[str, float], since: float, until: float
) -> list[Window]:
    """Between two consecutive final events a and b (of these orders), the orders waiting are
    those sent before b whose final event is b or later (or never came); the stall runs from
    the later of a and the earliest of their sending to b."""
    orders = sorted(
        (final_at.get(oid, math.inf), sent)
        for oid, sent in sent_at.items()
        if final_at.get(oid, math.inf) > since
    )
    finals = [final for final, _ in orders if final <= until]
    by_final = [final for final, _ in orders]
    # earliest_sent[i]: the earliest sending among orders[i:], those final at or after orders[i].
    earliest_sent = list(accumulate(reversed([sent for _, sent in orders]), min))[::-1]
    waits = []
    for a, b in pairwise([since, *finals, until]):
        first = bisect.bisect_left(by_final, b)
        if first < len(orders) and earliest_sent[first] < b:
            waits.append(Window(max(a, earliest_sent[first]), b))
    return waits


def stalls_after(
    segments: Iterable[Window], moments: Sequence[float], away: Sequence[Window]
) -> list[float]:
    """The longest stall after each fault, by fault (`moments[i]`: when the system should
    move again after fault i). The stall segments, less the times a dependency was away
    (orders may rightly wait then), are cut at every fault's moment; each piece belongs to
    the latest fault whose moment is at or before its start."""
    order = sorted(range(len(moments)), key=lambda i: moments[i])
    sorted_moments = [moments[i] for i in order]
    longest = [0.0] * len(moments)
    for segment in segments:
        for piece in _cut(_less(segment, away), sorted_moments):
            latest = bisect.bisect_right(sorted_moments, piece.start) - 1
            if latest >= 0:
                fault = order[latest]
                longest[fault] = max(longest[fault], piece.seconds)
    return longest


def longest_stall(
    segments: Iterable[Window], moments: Sequence[float], away: Sequence[Window]
) -> tuple[float, int | None] | None:
    """The longest stall of a run, whatever caused it: the longest piece of the stall segments
    less the times a dependency was away, cut at every fault's moment as in `stalls_after`, and
    the fault it belongs to (the index in `moments`; None for one before any fault). None when
    nothing waited."""
    order = sorted(range(len(moments)), key=lambda i: moments[i])
    sorted_moments = [moments[i] for i in order]
    longest: tuple[float, int | None] | None = None
    for segment in segments:
        for piece in _cut(_less(segment, away), sorted_moments):
            if longest is None or piece.seconds > longest[0]:
                latest = bisect.bisect_right(sorted_moments, piece.start) - 1
                longest = (piece.seconds, order[latest] if latest >= 0 else None)
    return longest


def _less(segment: Window, away: Sequence[Window]) -> list[Window]:
    """What is left of `segment` outside every window of `away`."""
    pieces = [segment]
    for gone in away:
        pieces = [
            part
            for p in pieces
            for part in (
                Window(p.start, min(p.end, gone.start)),
                Window(max(p.start, gone.end), p.end),
            )
            if part.seconds > 0
        ]
    return pieces


def _cut(pieces: list[Window], at: Sequence[float]) -> list[Window]:
    """`pieces`, each cut at every moment of `at` within it."""
    out = []
    for piece in pieces:
        inside = [t for t in at if piece.start < t < piece.end]
        bounds = [piece.start, *inside, piece.end]
        out += [Window(a, b) for a, b in pairwise(bounds)]
    return out


def not_dead_lettered(bad: Iterable[Coordinates], letters: Iterable[Coordinates]) -> list[str]:
    """Bad messages with no dead letter naming them as source (as `topic/partition@offset`)."""
    lettered = set(letters)
    return [f"{t}/{p}@{off}" for t, p, off in sorted(set(bad) - lettered)]


def repeated_letters(bad: Iterable[Coordinates], letters: Iterable[Coordinates]) -> int:
    """Dead letters beyond the first for each bad message (same source coordinates): none
    unless a consumer crashed between publishing a letter and committing its message."""
    wanted = set(bad)
    counts = Counter(c for c in letters if c in wanted)
    return sum(n - 1 for n in counts.values())


def outcome_counts(statuses: Mapping[str, str], orders: Iterable[str]) -> Counter[str]:
    return Counter(statuses.get(oid, "MISSING") for oid in orders)
