"""Moving an order's status from the delivery service, over a fake status store: idempotent
steps, illegal ones refused, and a lost race re-read and decided again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from uuid import UUID

import pytest

from foodflow.contracts.orders import (
    FailureReason,
    KitchenPlan,
    OrderFinalEvent,
    OrderSnapshot,
    OrderStatus,
    OrderStatusUpdate,
)
from foodflow.delivery_service.domain import DeliveryConflict, DeliveryNotFound
from foodflow.delivery_service.order_status import MOVE_ATTEMPTS, OrderStatusMover
from foodflow.orders.lifecycle import advance
from foodflow.orders.status_store import SaveOutcome


class FakeStore:
    """Snapshots in a dict; the first `conflicts` saves lose to another writer, which moves
    the order to `rival` (if given) instead."""

    def __init__(self, conflicts: int = 0, rival: OrderStatus | None = None) -> None:
        self.snapshots: dict[UUID, OrderSnapshot] = {}
        self.conflicts = conflicts
        self.rival = rival
        self.reads = 0

    async def load_snapshot(self, order_id: UUID) -> OrderSnapshot | None:
        self.reads += 1
        return self.snapshots.get(order_id)

    async def save(self, snapshot: OrderSnapshot) -> SaveOutcome:
        if self.conflicts:
            self.conflicts -= 1
            if self.rival is not None:
                current = self.snapshots[snapshot.order_id]
                self.snapshots[snapshot.order_id] = advance(current, self.rival)
            return SaveOutcome.CONFLICT
        self.snapshots[snapshot.order_id] = snapshot
        return SaveOutcome.WRITTEN


class Announced:
    def __init__(self) -> None:
        self.updates: list[OrderStatusUpdate] = []
        self.finals: list[OrderFinalEvent] = []

    async def __call__(self, update: OrderStatusUpdate, final: OrderFinalEvent | None) -> None:
        self.updates.append(update)
        if final is not None:
            self.finals.append(final)


PLAN = KitchenPlan(
    restaurant_id="tokyo-kitchen",
    restaurant_name="Tokyo Kitchen",
    lat=52.52,
    lon=13.405,
    ready_by=datetime(2026, 5, 1, 12, 30, tzinfo=UTC),
)


def mover(store: FakeStore) -> tuple[OrderStatusMover, Announced, UUID]:
    """An order a restaurant accepted (version 4), ready for a courier."""
    now = datetime.now(UTC)
    order_id = uuid.uuid4()
    store.snapshots[order_id] = OrderSnapshot(
        order_id=order_id,
        user_id="u-1",
        status=OrderStatus.RESTAURANT_ACCEPTED,
        version=4,
        created_at=now,
        updated_at=now,
        kitchen=PLAN,
    )
    announced = Announced()
    return OrderStatusMover(store, announced), announced, order_id  # type: ignore[arg-type]


async def test_a_step_is_stored_announced_and_idempotent() -> None:
    statuses, announced, order_id = mover(FakeStore())

    moved = await statuses.move(order_id, OrderStatus.COURIER_ASSIGNED, detail="courier c-1")
    again = await statuses.move(order_id, OrderStatus.COURIER_ASSIGNED)

    assert (moved.status, moved.version, moved.detail) == ("COURIER_ASSIGNED", 5, "courier c-1")
    assert again == moved
    assert [u.status for u in announced.updates] == ["COURIER_ASSIGNED"]
    # The kitchen's plan travels on with every later event.
    assert moved.kitchen == announced.updates[0].kitchen == PLAN
    # Every delivery step is written to PostgreSQL too (once: the retried step announces
    # nothing), with the order's whole history so far.
    assert [(f.status, f.version) for f in announced.finals] == [("COURIER_ASSIGNED", 5)]


async def test_each_delivery_step_goes_to_the_writer_with_the_history_so_far() -> None:
    store = FakeStore()
    statuses, announced, order_id = mover(store)
    for step in (OrderStatus.COURIER_ASSIGNED, OrderStatus.PICKED_UP, OrderStatus.DELIVERED):
        await statuses.move(order_id, step)

    assert [(f.status, f.version) for f in announced.finals] == [
        ("COURIER_ASSIGNED", 5),
        ("PICKED_UP", 6),
        ("DELIVERED", 7),
    ]
    assert [c.status for c in announced.finals[1].history][-2:] == ["COURIER_ASSIGNED", "PICKED_UP"]


async def test_a_final_step_is_announced_enriched() -> None:
    statuses, announced, order_id = mover(FakeStore())

    await statuses.move(order_id, OrderStatus.CANCELLED, reason=FailureReason.NO_COURIER)

    assert [(f.status, f.reason) for f in announced.finals] == [("CANCELLED", "NO_COURIER")]


async def test_an_illegal_step_or_an_unknown_order_is_refused() -> None:
    statuses, announced, order_id = mover(FakeStore())
    with pytest.raises(DeliveryConflict, match="cannot go from RESTAURANT_ACCEPTED to DELIVERED"):
        await statuses.move(order_id, OrderStatus.DELIVERED)
    with pytest.raises(DeliveryNotFound, match="has no current status"):
        await statuses.move(uuid.uuid4(), OrderStatus.PICKED_UP)
    assert announced.updates == []


async def test_a_lost_race_is_read_again_and_decided_again() -> None:
    store = FakeStore(conflicts=1, rival=OrderStatus.CANCELLED)
    statuses, announced, order_id = mover(store)

    with pytest.raises(DeliveryConflict, match="cannot go from CANCELLED to COURIER_ASSIGNED"):
        await statuses.move(order_id, OrderStatus.COURIER_ASSIGNED)

    assert store.reads == 2 and announced.updates == []


async def test_an_order_that_keeps_changing_is_a_conflict_after_a_few_tries() -> None:
    store = FakeStore(conflicts=MOVE_ATTEMPTS)
    statuses, announced, order_id = mover(store)

    with pytest.raises(DeliveryConflict, match="keeps changing; try again"):
        await statuses.move(order_id, OrderStatus.COURIER_ASSIGNED)

    assert store.reads == MOVE_ATTEMPTS and announced.updates == []
