"""Courier choice, distances, rides, the dispatch time and the ETA (no servers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from foodflow.delivery_service.domain import (
    HANDOVER,
    Courier,
    Point,
    choose_courier,
    dispatch_at,
    distance_km,
    eta,
    ride,
    waited_too_long,
)

RESTAURANT = Point(52.5200, 13.4050)
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_haversine_distance_is_right_on_a_known_pair() -> None:
    # Berlin Alexanderplatz to Brandenburger Tor: about 2.2 km.
    assert distance_km(Point(52.5219, 13.4132), Point(52.5163, 13.3777)) == pytest.approx(2.5, 0.1)
    assert distance_km(RESTAURANT, RESTAURANT) == 0


def test_the_nearest_available_courier_is_chosen() -> None:
    couriers = [
        Courier("far", Point(52.60, 13.50)),
        Courier("near-but-busy", Point(52.5201, 13.4051), available=False),
        Courier("near", Point(52.5250, 13.4100)),
    ]
    chosen = choose_courier(RESTAURANT, couriers)
    assert chosen is not None and chosen.courier_id == "near"


def test_no_free_courier_means_none() -> None:
    assert choose_courier(RESTAURANT, [Courier("busy", RESTAURANT, available=False)]) is None
    assert choose_courier(RESTAURANT, []) is None


def test_ties_go_to_the_lowest_id() -> None:
    chosen = choose_courier(RESTAURANT, [Courier("b", RESTAURANT), Courier("a", RESTAURANT)])
    assert chosen is not None and chosen.courier_id == "a"


def test_a_ride_takes_its_distance_at_the_speed() -> None:
    start = Point(52.50, 13.40)
    assert ride(start, RESTAURANT, 20) == timedelta(hours=distance_km(start, RESTAURANT) / 20)
    assert ride(RESTAURANT, RESTAURANT, 20) == timedelta(0)


def test_a_courier_is_sent_to_arrive_when_the_food_is_ready_up_to_the_tolerance_early() -> None:
    ready_by = NOW + timedelta(minutes=15)
    to_restaurant = timedelta(minutes=6)
    assert dispatch_at(ready_by, to_restaurant, timedelta(0)) == NOW + timedelta(minutes=9)
    assert dispatch_at(ready_by, to_restaurant, timedelta(seconds=30)) == NOW + timedelta(
        minutes=8, seconds=30
    )
    # Food ready long ago, or a courier far away: due at once (a time already past).
    assert dispatch_at(NOW - timedelta(minutes=5), to_restaurant, timedelta(0)) < NOW


def test_the_eta_leaves_the_restaurant_once_both_courier_and_food_are_there() -> None:
    to_customer = timedelta(minutes=7)
    food_later = eta(NOW + timedelta(minutes=20), NOW + timedelta(minutes=5), to_customer)
    courier_later = eta(NOW + timedelta(minutes=5), NOW + timedelta(minutes=20), to_customer)
    assert food_later == courier_later == NOW + timedelta(minutes=27) + HANDOVER


def test_waiting_limit() -> None:
    now = datetime.now(UTC)
    assert waited_too_long(now - timedelta(seconds=11), now, 10)
    assert not waited_too_long(now - timedelta(seconds=9), now, 10)
