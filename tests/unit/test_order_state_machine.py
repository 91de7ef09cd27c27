from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from foodflow.contracts.ids import derive_order_id
from foodflow.contracts.orders import (
    ALLOWED_TRANSITIONS,
    HANDOVER,
    FailureReason,
    KitchenPlan,
    OrderSnapshot,
    OrderStatus,
    OrderStatusUpdate,
    ValidatedOrder,
)
from foodflow.contracts.pricing import PriceBreakdown, PriceLine
from foodflow.orders.lifecycle import IllegalTransition, Order, advance

S = OrderStatus
R = FailureReason

SEED = ValidatedOrder.model_validate(
    {
        "user_id": "user-001",
        "items": [
            {"item_id": "sushi-set", "quantity": 1, "price": 25.50},
            {"item_id": "pho-bo", "quantity": 2, "price": 9.00},
        ],
    }
)
D = Decimal


def _priced() -> tuple[list[PriceLine], PriceBreakdown]:
    lines = [
        PriceLine(item_id="sushi-set", quantity=1, unit_price=D("25.50"), line_total=D("25.50")),
        PriceLine(item_id="pho-bo", quantity=2, unit_price=D("9.00"), line_total=D("18.00")),
    ]
    breakdown = PriceBreakdown(
        subtotal=D("43.50"),
        discount=D("4.35"),
        delivery_fee=D("2.99"),
        small_order_fee=D("0.00"),
        tax=D("2.95"),
        total=D("45.09"),
    )
    return lines, breakdown


def test_happy_path_versions_increase_and_timeline_is_recorded() -> None:
    order = Order(order_id=uuid4(), request=SEED)
    updates = [order.receive(), order.start_processing(*_priced()), order.confirm()]
    assert [u.status for u in updates] == [
        OrderStatus.RECEIVED,
        OrderStatus.PROCESSING,
        OrderStatus.CONFIRMED,
    ]
    assert [u.version for u in updates] == [1, 2, 3]
    final = order.final_event()
    assert [h.version for h in final.history] == [1, 2, 3]
    assert [(i.item_id, i.unit_price) for i in final.items] == [
        ("sushi-set", D("25.50")),
        ("pho-bo", D("9.00")),
    ]
    assert final.price is not None and final.price.total == D("45.09")


@pytest.mark.parametrize(
    "path",
    [
        [OrderStatus.PROCESSING],
        [OrderStatus.RECEIVED, OrderStatus.CONFIRMED],
        [OrderStatus.RECEIVED, OrderStatus.FAILED, OrderStatus.PROCESSING],
        [OrderStatus.RECEIVED, OrderStatus.PROCESSING, OrderStatus.CONFIRMED, OrderStatus.FAILED],
        [OrderStatus.RECEIVED, OrderStatus.RECEIVED],
    ],
)
def test_illegal_transitions_are_refused_and_change_nothing(path: list[OrderStatus]) -> None:
    order = Order(order_id=uuid4(), request=SEED)
    *legal, illegal = path
    for status in legal:
        order.transition(status)
    before = (order.status, order.version, len(order.history))
    with pytest.raises(IllegalTransition):
        order.transition(illegal)
    assert (order.status, order.version, len(order.history)) == before


def test_failed_order_carries_its_reason_and_unpriced_items() -> None:
    order = Order(order_id=uuid4(), request=SEED)
    order.receive()
    update = order.fail(FailureReason.OUT_OF_STOCK, "not enough stock: pho-bo")
    assert update.reason == FailureReason.OUT_OF_STOCK and update.status.left_saga
    final = order.final_event()
    assert all(i.unit_price is None for i in final.items)


def test_final_event_refused_before_a_final_state() -> None:
    order = Order(order_id=uuid4(), request=SEED)
    order.receive()
    with pytest.raises(IllegalTransition):
        order.final_event()


def test_derived_order_ids_are_stable_per_log_position() -> None:
    assert derive_order_id("validated_orders", 1, 42) == derive_order_id("validated_orders", 1, 42)
    assert derive_order_id("validated_orders", 1, 42) != derive_order_id("validated_orders", 2, 42)


def _confirmed_snapshot() -> OrderSnapshot:
    order = Order(order_id=uuid4(), request=SEED)
    order.receive()
    order.start_processing(*_priced())
    order.confirm()
    return order.full_snapshot()


def _plan(minutes: int = 10) -> KitchenPlan:
    return KitchenPlan(
        restaurant_id="tokyo-kitchen",
        restaurant_name="Tokyo Kitchen",
        lat=52.52,
        lon=13.405,
        ready_by=datetime(2026, 12, 2, 12, minutes, tzinfo=UTC),
    )


# The kitchen's steps and the courier's interleave: the courier is sent to arrive when the
# food is ready, so the assignment may come before, during or after the cooking.
ACCEPTED, ASSIGNED, READY = S.RESTAURANT_ACCEPTED, S.COURIER_ASSIGNED, S.READY_FOR_PICKUP
INTERLEAVINGS = [
    [ACCEPTED, S.PREPARING, READY, ASSIGNED],  # the kitchen first, then the courier
    [ACCEPTED, S.PREPARING, ASSIGNED, READY],  # the courier sent while it cooks
    [ACCEPTED, ASSIGNED, S.PREPARING, READY],  # the courier sent before it starts
]


@pytest.mark.parametrize("steps", INTERLEAVINGS)
def test_kitchen_and_delivery_steps_follow_confirmation_with_the_next_versions(
    steps: list[OrderStatus],
) -> None:
    snapshot = _confirmed_snapshot()
    snapshot = advance(snapshot, steps[0], kitchen=_plan())
    for status in [*steps[1:], S.PICKED_UP, S.DELIVERED]:
        snapshot = advance(snapshot, status)
    assert snapshot.version == 3 + len(steps) + 2 and snapshot.status.is_terminal
    assert [h.status for h in snapshot.history][3:] == [*steps, "PICKED_UP", "DELIVERED"]
    assert len(snapshot.items) == 2 and snapshot.price is not None
    # The plan set on acceptance travels on every later step.
    assert snapshot.kitchen == _plan()


def test_a_delay_is_preparing_again_with_a_new_ready_by_time() -> None:
    snapshot = advance(_confirmed_snapshot(), S.RESTAURANT_ACCEPTED, kitchen=_plan(10))
    snapshot = advance(snapshot, S.PREPARING)
    delayed = advance(snapshot, S.PREPARING, kitchen=_plan(25))
    assert delayed.version == snapshot.version + 1 and delayed.status is S.PREPARING
    assert delayed.kitchen is not None and delayed.kitchen.ready_by.minute == 25


def test_a_rejected_order_can_only_be_cancelled() -> None:
    snapshot = advance(_confirmed_snapshot(), S.RESTAURANT_REJECTED, reason=R.KITCHEN_BUSY)
    assert ALLOWED_TRANSITIONS[snapshot.status] == {S.CANCELLED}
    for status in (S.RESTAURANT_ACCEPTED, S.PREPARING, S.COURIER_ASSIGNED, S.PICKED_UP):
        with pytest.raises(IllegalTransition):
            advance(snapshot, status)
    cancelled = advance(snapshot, S.CANCELLED, reason=R.KITCHEN_BUSY)
    assert cancelled.status.is_terminal and cancelled.reason is R.KITCHEN_BUSY


def test_the_food_is_not_picked_up_before_the_kitchen_accepted_it() -> None:
    snapshot = _confirmed_snapshot()
    for status in (S.COURIER_ASSIGNED, S.PREPARING, S.READY_FOR_PICKUP, S.PICKED_UP):
        with pytest.raises(IllegalTransition):
            advance(snapshot, status)


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ([OrderStatus.CANCELLED], True),
        ([S.RESTAURANT_ACCEPTED, S.PREPARING, S.COURIER_ASSIGNED, S.CANCELLED], True),
        ([S.RESTAURANT_ACCEPTED, S.PREPARING, S.READY_FOR_PICKUP, S.CANCELLED], True),
        ([ACCEPTED, ASSIGNED, READY, S.PICKED_UP, S.CANCELLED], False),
        ([OrderStatus.PICKED_UP], False),
        ([OrderStatus.DELIVERED], False),
        ([OrderStatus.CANCELLED, OrderStatus.RESTAURANT_ACCEPTED], False),
    ],
)
def test_cancel_only_before_pickup(path: list[OrderStatus], allowed: bool) -> None:
    snapshot = _confirmed_snapshot()
    *legal, last = path
    for status in legal:
        snapshot = advance(snapshot, status)
    if allowed:
        assert advance(snapshot, last).status == last
    else:
        with pytest.raises(IllegalTransition):
            advance(snapshot, last)


PREDICATES = {
    "in_saga": S.IN_SAGA,
    "left_saga": S.LEFT_SAGA,
    "ends_saga": S.ENDS_SAGA,
    "is_terminal": S.TERMINAL,
    "aborted": S.ABORTED,
    "cancellable": S.CANCELLABLE,
    "persisted": S.PERSISTED,
}


@pytest.mark.parametrize(
    ("predicate", "members"),
    [
        ("in_saga", {S.RECEIVED, S.PROCESSING}),
        ("left_saga", set(S) - {S.RECEIVED, S.PROCESSING}),
        ("ends_saga", {S.CONFIRMED, S.FAILED, S.CANCELLED}),
        ("is_terminal", {S.DELIVERED, S.FAILED, S.CANCELLED}),
        ("aborted", {S.FAILED, S.CANCELLED}),
        (
            "cancellable",
            {
                S.RECEIVED,
                S.PROCESSING,
                S.CONFIRMED,
                S.RESTAURANT_ACCEPTED,
                S.RESTAURANT_REJECTED,
                S.PREPARING,
                S.READY_FOR_PICKUP,
                S.COURIER_ASSIGNED,
            },
        ),
        # Every status from the handover on: the delivery's steps reach PostgreSQL too.
        ("persisted", set(S) - {S.RECEIVED, S.PROCESSING}),
    ],
)
def test_each_predicate_holds_for_exactly_its_statuses(predicate: str, members: set[S]) -> None:
    assert {s for s in S if getattr(s, predicate)} == members
    assert PREDICATES[predicate] == members


def _successors(status: S) -> set[S]:
    """Every status reachable from `status` in one or more transitions."""
    seen: set[S] = set()
    frontier = set(ALLOWED_TRANSITIONS[status])
    while frontier:
        seen |= frontier
        frontier = {t for s in frontier for t in ALLOWED_TRANSITIONS[s]} - seen
    return seen


def test_the_predicates_agree_with_the_transitions() -> None:
    for s in S:
        moves = ALLOWED_TRANSITIONS[s]
        assert s.is_terminal == (not moves)
        assert s.cancellable == (S.CANCELLED in moves)
        # The saga drives an order until the handover is behind it (or out of reach).
        assert s.in_saga == (HANDOVER in _successors(s))
        assert s.left_saga == (not s.in_saga)
        # Each move of the saga either stays in it or ends it there.
        if s.in_saga:
            assert all(t.in_saga or t.ends_saga for t in moves)
        assert s.ends_saga == (s.left_saga and any(s in ALLOWED_TRANSITIONS[f] for f in S.IN_SAGA))
        assert s.aborted == (s.ends_saga and s.is_terminal)
        assert s.persisted == s.left_saga
    # Once out of the saga, an order never comes back into it.
    assert all(not t.in_saga for s in S.LEFT_SAGA for t in _successors(s))
    # Every order starts with a status the saga drives, or fails at once (an unreadable one).
    assert ALLOWED_TRANSITIONS[None] == {S.RECEIVED, S.FAILED}
    assert set(ALLOWED_TRANSITIONS) == {None, *S}


def test_a_rejected_order_fails_at_version_one_straight_from_no_status() -> None:
    order_id = uuid4()
    event = Order.reject(order_id, "u-1", "invalid order: items: Field required")
    assert (event.order_id, event.status, event.reason, event.version) == (
        order_id,
        S.FAILED,
        FailureReason.INVALID_ORDER,
        1,
    )
    assert [(h.status, h.version) for h in event.history] == [(S.FAILED, 1)]
    assert event.items == [] and event.price is None
    assert event.created_at == event.updated_at == event.history[0].at


def test_the_publish_time_rides_on_every_event_and_survives_a_resume() -> None:
    published = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    order = Order(order_id=uuid4(), request=SEED, published_at=published)
    lines, price = _priced()
    events = [order.receive(), order.start_processing(lines, price), order.confirm()]
    assert [e.published_at for e in events] == [published] * 3
    assert order.final_event().published_at == published
    stored = OrderSnapshot.model_validate_json(order.full_snapshot().model_dump_json())
    resumed = Order.resume(SEED, stored)
    assert resumed.snapshot().published_at == published


def test_an_event_from_before_the_publish_time_still_reads() -> None:
    """Backward compatible: events and snapshots written without `published_at` parse as None."""
    old = {
        "order_id": str(uuid4()),
        "user_id": "user-001",
        "status": "CONFIRMED",
        "version": 3,
        "created_at": "2026-11-30T12:00:00Z",
        "updated_at": "2026-11-30T12:00:01Z",
    }
    assert OrderStatusUpdate.model_validate(old).published_at is None
    assert OrderSnapshot.model_validate(old).published_at is None
