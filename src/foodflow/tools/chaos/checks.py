"""The five invariants, checked against PostgreSQL, Redis and the topics after a chaos run.

Pure functions over what was read: each takes plain data and returns the offending order ids,
so the rules themselves are unit-tested without any server.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from foodflow.contracts.orders import OrderStatus

# Statuses in which an order holds its stock for good: it left the saga confirmed and was not
# cancelled since (a cancellation gives the stock back).
STOCK_TAKEN = frozenset(s.value for s in OrderStatus.LEFT_SAGA - OrderStatus.ABORTED)


@dataclass
class Observed:
    """What the run saw, per order id (as str)."""

    expected: dict[str, dict[str, int]]  # order → {item: quantity} of each accepted order
    expected_invalid: set[str]  # orders sent malformed but with an id: must end FAILED
    final_statuses: frozenset[str]
    postgres: dict[str, str] = field(default_factory=dict)  # order → status in `orders`
    redis: dict[str, str] = field(default_factory=dict)  # order → status in Redis
    events: dict[str, list[tuple[int, str, str | None]]] = field(default_factory=dict)
    final_events: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    initial_stock: dict[str, int] = field(default_factory=dict)
    current_stock: dict[str, int] = field(default_factory=dict)
    held_reservations: dict[str, dict[str, int]] = field(default_factory=dict)  # RESERVED


def all_orders(o: Observed) -> set[str]:
    return set(o.expected) | o.expected_invalid


def lost(o: Observed) -> list[str]:
    """Invariant 1: every accepted order has a final state in PostgreSQL and in Redis."""
    return sorted(
        oid
        for oid in all_orders(o)
        if o.postgres.get(oid) not in o.final_statuses or o.redis.get(oid) not in o.final_statuses
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
    """Invariant 4: nothing left in a non-final state (of those that got any state at all)."""
    return sorted(
        oid
        for oid in all_orders(o)
        if (oid in o.redis and o.redis[oid] not in o.final_statuses)
        or (oid in o.postgres and o.postgres[oid] not in o.final_statuses)
    )


def inconsistent(o: Observed) -> list[str]:
    """Invariant 5: Redis, PostgreSQL and the last status event tell the same story."""
    bad = []
    for oid in all_orders(o):
        events = o.events.get(oid, [])
        last = max(events)[1] if events else None
        seen = {o.postgres.get(oid), o.redis.get(oid), last}
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


def invalid_not_failed(o: Observed) -> list[str]:
    return sorted(oid for oid in o.expected_invalid if o.postgres.get(oid) != "FAILED")


def outcome_counts(statuses: Mapping[str, str], orders: Iterable[str]) -> Counter[str]:
    return Counter(statuses.get(oid, "MISSING") for oid in orders)
