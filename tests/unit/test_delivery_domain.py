"""The Delivery aggregate's transitions, its kitchen plan and its ETA (no servers)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from foodflow.delivery_service.domain import (
    HANDOVER,
    Courier,
    Delivery,
    DeliveryConflict,
    DeliveryState,
    FoodNotReady,
    Kitchen,
    Point,
    WrongCourier,
    ride,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SPEED = 20.0
RESTAURANT = Point(52.5200, 13.4050)
DROPOFF = Point(52.5300, 13.4000)
COURIER = Courier("c-1", Point(52.5100, 13.4000), name="Anna")
TO_RESTAURANT = ride(COURIER.position, RESTAURANT, SPEED)
TO_CUSTOMER = ride(RESTAURANT, DROPOFF, SPEED)


def kitchen(ready_in: timedelta = timedelta(minutes=10)) -> Kitchen:
    return Kitchen("tokyo-kitchen", "Tokyo Kitchen", RESTAURANT, NOW + ready_in)


def waiting(plan: Kitchen | None = None) -> Delivery:
    return Delivery.waiting(uuid.uuid4(), "u-1", "Torstr. 1", DROPOFF, plan or kitchen())


def assigned(plan: Kitchen | None = None) -> Delivery:
    return waiting(plan).assign(COURIER, NOW, SPEED)


def minutes_to(door: datetime) -> int:
    return -(-(door - NOW) // timedelta(minutes=1))  # rounded up


def test_the_happy_path() -> None:
    delivery = assigned().food_is_ready()
    assert (delivery.state, delivery.courier_id) == (DeliveryState.ASSIGNED, "c-1")
    arrived = delivery.arrive("c-1", NOW + TO_RESTAURANT, SPEED)
    assert arrived.arrived_at == NOW + TO_RESTAURANT
    picked = arrived.pick_up("c-1")
    assert picked.state is DeliveryState.PICKED_UP
    assert picked.pick_up(None) is picked  # a retried step changes nothing
    delivered = picked.deliver(None)
    assert delivered.state is DeliveryState.DELIVERED
    assert delivered.deliver("c-1") is delivered


def test_the_eta_waits_for_the_food_or_for_the_courier_whichever_is_later() -> None:
    late_food = assigned(kitchen(ready_in=timedelta(minutes=30)))
    assert late_food.eta_minutes == minutes_to(NOW + timedelta(minutes=30) + TO_CUSTOMER + HANDOVER)
    food_waits = assigned(kitchen(ready_in=timedelta(0)))
    assert food_waits.eta_minutes == minutes_to(NOW + TO_RESTAURANT + TO_CUSTOMER + HANDOVER)
    assert food_waits.courier_due_at == NOW + TO_RESTAURANT and food_waits.assigned_at == NOW
    assert food_waits.distance_km is not None and food_waits.distance_km > 0


def test_a_delay_moves_the_eta_of_an_assigned_delivery_and_the_plan_of_a_waiting_one() -> None:
    before = assigned(kitchen(ready_in=timedelta(minutes=20)))
    later = kitchen(ready_in=timedelta(minutes=35))

    delayed = before.plan(later, SPEED)

    assert delayed.kitchen == later
    assert before.eta_minutes is not None and delayed.eta_minutes == before.eta_minutes + 15
    assert delayed.plan(later, SPEED) is delayed  # the same plan again changes nothing
    still_waiting = waiting().plan(later, SPEED)
    assert (still_waiting.kitchen, still_waiting.eta_minutes) == (later, None)
    picked = before.food_is_ready().pick_up(None)
    assert picked.plan(later, SPEED) is picked  # after pickup the kitchen no longer matters


def test_the_eta_counts_from_the_real_arrival() -> None:
    delivery = assigned(kitchen(ready_in=timedelta(0)))
    late = NOW + TO_RESTAURANT + timedelta(minutes=10)

    arrived = delivery.arrive(None, late, SPEED)

    assert arrived.eta_minutes == minutes_to(late + TO_CUSTOMER + HANDOVER)
    assert arrived.arrive("c-1", late + timedelta(minutes=5), SPEED) is arrived  # once


def test_pickup_waits_for_the_food() -> None:
    delivery = assigned()
    with pytest.raises(FoodNotReady, match="the food is not ready yet"):
        delivery.pick_up("c-1")
    with pytest.raises(WrongCourier):  # the courier is checked first, whatever the food
        delivery.pick_up("c-2")
    assert delivery.food_is_ready().pick_up("c-1").state is DeliveryState.PICKED_UP


def test_the_food_ready_is_kept_before_pickup_only() -> None:
    ready = waiting().food_is_ready()
    assert ready.food_ready and ready.food_is_ready() is ready
    cancelled = waiting().start_cancel("CUSTOMER_CANCELLED")
    assert cancelled.food_is_ready() is cancelled


def test_steps_out_of_order_are_conflicts() -> None:
    delivery = waiting()
    with pytest.raises(DeliveryConflict, match="is WAITING; it cannot be PICKED_UP"):
        delivery.food_is_ready().pick_up(None)
    with pytest.raises(DeliveryConflict, match="is WAITING; it cannot be DELIVERED"):
        delivery.deliver(None)
    with pytest.raises(DeliveryConflict, match="is WAITING; it cannot be reported at the rest"):
        delivery.arrive(None, NOW, SPEED)
    with pytest.raises(DeliveryConflict, match="has no restaurant yet"):
        Delivery.waiting(uuid.uuid4(), "u-1", "Torstr. 1", DROPOFF).assign(COURIER, NOW, SPEED)
    taken = delivery.assign(COURIER, NOW, SPEED)
    with pytest.raises(DeliveryConflict, match="it cannot be assigned"):
        taken.assign(COURIER, NOW, SPEED)
    with pytest.raises(WrongCourier, match="is not assigned to c-2"):
        taken.arrive("c-2", NOW, SPEED)
    with pytest.raises(DeliveryConflict, match="it cannot be abandoned"):
        taken.abandon("ORDER_CANCELLED")
    with pytest.raises(DeliveryConflict, match="it cannot be cancelled"):
        taken.finish_cancel()


def test_cancel_before_pickup_only() -> None:
    for before in (waiting(), assigned()):
        cancelling = before.start_cancel("CUSTOMER_CANCELLED")
        assert (cancelling.state, cancelling.cancel_reason) == (
            DeliveryState.CANCELLING,
            "CUSTOMER_CANCELLED",
        )
        assert cancelling.start_cancel("NO_COURIER") is cancelling  # keeps its first reason
        cancelled = cancelling.finish_cancel()
        assert cancelled.state is DeliveryState.CANCELLED
        assert cancelled.finish_cancel() is cancelled
        assert cancelled.start_cancel("NO_COURIER") is cancelled
    picked = assigned().food_is_ready().pick_up(None)
    with pytest.raises(DeliveryConflict, match="is picked up; it can no longer be cancelled"):
        picked.start_cancel("CUSTOMER_CANCELLED")
    with pytest.raises(DeliveryConflict, match="is delivered; it can no longer be cancelled"):
        picked.deliver(None).start_cancel("CUSTOMER_CANCELLED")


def test_an_abandoned_delivery_is_cancelled_with_why() -> None:
    abandoned = waiting().abandon("ORDER_EXPIRED")
    assert (abandoned.state, abandoned.cancel_reason) == (
        DeliveryState.CANCELLED,
        "ORDER_EXPIRED",
    )


def test_a_delivery_assigned_before_kitchens_keeps_its_eta() -> None:
    """One migrated from before (its trip was never recorded): a plan or an arrival leaves its
    ETA as it was."""
    old = Delivery(
        uuid.uuid4(),
        "u-1",
        DeliveryState.ASSIGNED,
        "Torstr. 1",
        DROPOFF,
        kitchen(ready_in=timedelta(0)),
        food_ready=True,
        courier_id="c-1",
        eta_minutes=12,
    )
    assert old.arrive("c-1", NOW, SPEED).eta_minutes == 12
    assert old.plan(kitchen(), SPEED).eta_minutes == 12
