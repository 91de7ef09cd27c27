"""The Delivery aggregate's transitions (no servers)."""

from __future__ import annotations

import uuid

import pytest

from foodflow.delivery_service.domain import (
    Delivery,
    DeliveryConflict,
    DeliveryState,
    Point,
    Route,
    WrongCourier,
)

ROUTE = Route(distance_km=3.2, eta_minutes=14)


def waiting() -> Delivery:
    return Delivery.waiting(uuid.uuid4(), "u-1", "tokyo-kitchen", "Torstr. 1", Point(52.53, 13.4))


def test_the_happy_path() -> None:
    assigned = waiting().assign("c-1", ROUTE)
    assert (assigned.state, assigned.courier_id, assigned.eta_minutes) == (
        DeliveryState.ASSIGNED,
        "c-1",
        14,
    )
    picked = assigned.pick_up("c-1")
    assert picked.state is DeliveryState.PICKED_UP
    assert picked.pick_up(None) is picked  # a retried step changes nothing
    delivered = picked.deliver(None)
    assert delivered.state is DeliveryState.DELIVERED
    assert delivered.deliver("c-1") is delivered


def test_steps_out_of_order_are_conflicts() -> None:
    delivery = waiting()
    with pytest.raises(DeliveryConflict, match="is WAITING; it cannot be PICKED_UP"):
        delivery.pick_up(None)
    with pytest.raises(DeliveryConflict, match="is WAITING; it cannot be DELIVERED"):
        delivery.deliver(None)
    assigned = delivery.assign("c-1", ROUTE)
    with pytest.raises(DeliveryConflict, match="it cannot be assigned"):
        assigned.assign("c-2", ROUTE)
    with pytest.raises(WrongCourier, match="is not assigned to c-2"):
        assigned.pick_up("c-2")
    with pytest.raises(DeliveryConflict, match="it cannot be abandoned"):
        assigned.abandon("ORDER_CANCELLED")
    with pytest.raises(DeliveryConflict, match="it cannot be cancelled"):
        assigned.finish_cancel()


def test_cancel_before_pickup_only() -> None:
    for before in (waiting(), waiting().assign("c-1", ROUTE)):
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
    picked = waiting().assign("c-1", ROUTE).pick_up(None)
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
