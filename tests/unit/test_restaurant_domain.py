"""The kitchens' rules: opening hours in the restaurant's own time zone, the ticket's steps,
which restaurant cooks an order, the intake's refusals and the suggested ready-in (no servers)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest

from foodflow.contracts.orders import (
    FailureReason,
    KitchenPlan,
    OrderSnapshot,
    OrderStatus,
    StatusChange,
)
from foodflow.contracts.restaurant import MAX_READY_IN_MINUTES, TicketState
from foodflow.restaurant_service.domain import (
    DEFAULT_PREP_MINUTES,
    DEFAULT_RESTAURANT,
    InvalidOpening,
    Kitchen,
    MenuLine,
    Ticket,
    TicketConflict,
    TicketLine,
    choose_restaurant,
    intake_refusal,
    suggested_ready_in,
    ticket_state_of,
    unavailable_items,
    within_hours,
)

NOON = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)  # 13:00 in Berlin (winter)
READY = NOON + timedelta(minutes=15)


def kitchen(**over: object) -> Kitchen:
    fields: dict[str, object] = {
        "restaurant_id": "tokyo-kitchen",
        "name": "Tokyo Kitchen",
        "lat": 52.52,
        "lon": 13.405,
        "timezone": "Europe/Berlin",
        "opens_at": time(0, 0),
        "closes_at": time(0, 0),
        "accepting": True,
        "capacity": 20,
    }
    return Kitchen(**(fields | over))  # type: ignore[arg-type]


def pending() -> Ticket:
    return Ticket.pending(uuid.uuid4(), "tokyo-kitchen", [TicketLine("ramen", 2)])


# --- opening hours ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("opens", "closes", "local", "open_"),
    [
        (time(0), time(0), time(3, 30), True),  # equal: all day
        (time(11), time(22), time(11), True),
        (time(11), time(22), time(21, 59), True),
        (time(11), time(22), time(22), False),  # closing time is closed
        (time(11), time(22), time(10, 59), False),
        (time(18), time(2), time(23), True),  # past midnight
        (time(18), time(2), time(1, 59), True),
        (time(18), time(2), time(2), False),
        (time(18), time(2), time(12), False),
    ],
)
def test_within_hours(opens: time, closes: time, local: time, open_: bool) -> None:
    assert within_hours(opens, closes, local) is open_


def test_hours_are_the_restaurants_local_time() -> None:
    lunch = kitchen(opens_at=time(12, 30), closes_at=time(14, 0))
    assert lunch.open_at(NOON)  # 13:00 in Berlin
    assert not lunch.open_at(NOON.replace(month=7, hour=12))  # summer: 14:00 in Berlin
    assert not kitchen(timezone="Asia/Tokyo", opens_at=time(12), closes_at=time(14)).open_at(NOON)


def test_a_kitchen_not_accepting_is_closed_whatever_the_hours() -> None:
    assert not kitchen(accepting=False).open_at(NOON)


def test_an_unknown_time_zone_counts_as_utc() -> None:
    assert kitchen(timezone="Mars/Olympus", opens_at=time(12), closes_at=time(12, 1)).open_at(NOON)


def test_opening_changes() -> None:
    paused = kitchen().with_opening(False, None, None)
    assert not paused.accepting and paused.opens_at == time(0)
    hours = paused.with_opening(None, time(11), time(23))
    assert (hours.accepting, hours.opens_at, hours.closes_at) == (False, time(11), time(23))
    with pytest.raises(InvalidOpening, match="both"):
        kitchen().with_opening(None, time(11), None)
    with pytest.raises(InvalidOpening, match="without an offset"):
        kitchen().with_opening(None, time(11, tzinfo=UTC), time(23, tzinfo=UTC))


# --- the ticket ------------------------------------------------------------------------------


def test_the_happy_path_and_repeats() -> None:
    accepted = pending().accept(READY)
    assert (accepted.state, accepted.ready_by) == (TicketState.ACCEPTED, READY)
    assert accepted.accept(READY + timedelta(hours=1)) is accepted  # a repeat keeps the time
    preparing = accepted.prepare()
    assert preparing.state is TicketState.PREPARING and preparing.prepare() is preparing
    later = preparing.delay(READY + timedelta(minutes=10))
    assert (later.state, later.ready_by) == (TicketState.PREPARING, READY + timedelta(minutes=10))
    ready = later.ready()
    assert ready.state is TicketState.READY and ready.ready() is ready
    collected = ready.close(TicketState.PICKED_UP)
    assert collected.state is TicketState.PICKED_UP
    assert collected.close(TicketState.CANCELLED) is collected


def test_accepted_may_be_delayed_or_made_ready_at_once() -> None:
    accepted = pending().accept(READY)
    assert accepted.delay(READY).state is TicketState.PREPARING
    assert accepted.ready().state is TicketState.READY


def test_steps_out_of_turn_are_conflicts() -> None:
    ticket = pending()
    for step in (ticket.prepare, ticket.ready, lambda: ticket.delay(READY)):
        with pytest.raises(TicketConflict, match="is pending at the kitchen"):
            step()
    accepted = ticket.accept(READY)
    with pytest.raises(TicketConflict, match="cannot be rejected"):
        accepted.reject(FailureReason.KITCHEN_BUSY)
    rejected = ticket.reject(FailureReason.KITCHEN_BUSY, "full")
    with pytest.raises(TicketConflict, match="is rejected at the kitchen; it cannot be accepted"):
        rejected.accept(READY)
    with pytest.raises(TicketConflict):
        accepted.ready().delay(READY)


def test_a_rejection_keeps_its_first_reason() -> None:
    rejected = pending().reject(FailureReason.ITEM_UNAVAILABLE, "no ramen")
    assert (rejected.state, rejected.reason, rejected.detail) == (
        TicketState.REJECTED,
        "ITEM_UNAVAILABLE",
        "no ramen",
    )
    assert rejected.reject(FailureReason.KITCHEN_BUSY) is rejected
    assert rejected.close(TicketState.CANCELLED) is rejected  # then cancelled: stays rejected


def test_cancellation_closes_any_open_ticket() -> None:
    for ticket in (pending(), pending().accept(READY), pending().accept(READY).ready()):
        assert ticket.close(TicketState.CANCELLED).state is TicketState.CANCELLED


# --- following the order ---------------------------------------------------------------------


def snapshot(status: OrderStatus, *history: OrderStatus, **over: object) -> OrderSnapshot:
    statuses = (OrderStatus.RECEIVED, OrderStatus.PROCESSING, OrderStatus.CONFIRMED, *history)
    return OrderSnapshot(
        order_id=uuid.uuid4(),
        user_id="u-1",
        status=status,
        version=len(statuses),
        created_at=NOON,
        history=[StatusChange(status=s, version=v, at=NOON) for v, s in enumerate(statuses, 1)],
        **over,
    )


def test_the_ticket_state_an_order_implies() -> None:
    accepted, assigned = OrderStatus.RESTAURANT_ACCEPTED, OrderStatus.COURIER_ASSIGNED
    assert ticket_state_of(OrderStatus.CONFIRMED, [OrderStatus.CONFIRMED]) is None
    assert ticket_state_of(assigned, [accepted, assigned]) is TicketState.ACCEPTED
    assert ticket_state_of(OrderStatus.PREPARING, [accepted]) is TicketState.PREPARING
    assert ticket_state_of(OrderStatus.DELIVERED, []) is TicketState.PICKED_UP
    assert ticket_state_of(OrderStatus.CANCELLED, [accepted]) is TicketState.CANCELLED


def test_a_ticket_left_behind_follows_its_order() -> None:
    plan = KitchenPlan(
        restaurant_id="tokyo-kitchen", restaurant_name="Tokyo", lat=52.5, lon=13.4, ready_by=READY
    )
    accepted = snapshot(
        OrderStatus.COURIER_ASSIGNED,
        OrderStatus.RESTAURANT_ACCEPTED,
        OrderStatus.COURIER_ASSIGNED,
        kitchen=plan,
    )
    followed = pending().follow(accepted)
    assert (followed.state, followed.ready_by) == (TicketState.ACCEPTED, READY)
    rejected = snapshot(
        OrderStatus.RESTAURANT_REJECTED,
        OrderStatus.RESTAURANT_REJECTED,
        reason=FailureReason.KITCHEN_BUSY,
        detail="full",
    )
    assert pending().follow(rejected).reason == "KITCHEN_BUSY"
    still = pending()
    assert still.follow(snapshot(OrderStatus.CONFIRMED)) is still


# --- choosing, refusing, promising -----------------------------------------------------------

MENU = {
    "ramen": MenuLine("ramen", "tokyo-kitchen", 12),
    "pho-bo": MenuLine("pho-bo", "saigon-street", 15, available=False),
    "green-tea": MenuLine("green-tea", "tokyo-kitchen", 5),
}


def test_the_restaurant_of_the_first_item_on_a_menu_cooks_the_order() -> None:
    assert choose_restaurant(["ramen", "pho-bo"], MENU) == "saigon-street"  # pho-bo < ramen
    assert choose_restaurant(["test-x", "ramen"], MENU) == "tokyo-kitchen"
    assert choose_restaurant(["test-x"], MENU) == DEFAULT_RESTAURANT
    assert choose_restaurant([], MENU) == DEFAULT_RESTAURANT


def test_unavailable_items_are_those_marked_so() -> None:
    assert unavailable_items(["ramen", "pho-bo", "test-x"], MENU) == ["pho-bo"]


def test_intake_refusals_closed_first_then_items_then_capacity() -> None:
    closed = kitchen(accepting=False, capacity=1)
    assert intake_refusal(closed, NOON, ["pho-bo"], 5) is FailureReason.RESTAURANT_CLOSED
    assert intake_refusal(kitchen(capacity=1), NOON, ["pho-bo"], 5) is (
        FailureReason.ITEM_UNAVAILABLE
    )
    assert intake_refusal(kitchen(capacity=2), NOON, [], 2) is FailureReason.KITCHEN_BUSY
    assert intake_refusal(kitchen(capacity=2), NOON, [], 1) is None


def test_the_suggested_ready_in_is_the_slowest_dish_plus_the_queue() -> None:
    lines = [TicketLine("ramen", 1), TicketLine("green-tea", 3)]
    assert suggested_ready_in(lines, MENU, active=0, capacity=20) == 12
    assert suggested_ready_in(lines, MENU, active=10, capacity=20) == 18  # 12 + 12 * 10/20
    assert suggested_ready_in(lines, MENU, active=20, capacity=20) == 24
    assert suggested_ready_in([TicketLine("test-x", 1)], {}, 0, 20) == DEFAULT_PREP_MINUTES
    assert suggested_ready_in([], MENU, 0, 20) == DEFAULT_PREP_MINUTES
    slow = {"stew": MenuLine("stew", "central-kitchen", float(Decimal("200")))}
    assert suggested_ready_in([TicketLine("stew", 1)], slow, 20, 20) == MAX_READY_IN_MINUTES
    assert suggested_ready_in([TicketLine("ramen", 1)], MENU, 1, 3) == 16  # 16.0, half-minutes
