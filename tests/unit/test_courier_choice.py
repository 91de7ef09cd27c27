"""Courier choice, distances and ETAs (no servers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from foodflow.delivery_service.domain import (
    Courier,
    Point,
    choose_courier,
    distance_km,
    plan_route,
    waited_too_long,
)

RESTAURANT = Point(52.5200, 13.4050)


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


def test_eta_covers_both_legs_and_the_handovers() -> None:
    route = plan_route(Point(52.50, 13.40), RESTAURANT, Point(52.54, 13.40), speed_kmh=20)
    legs = distance_km(Point(52.50, 13.40), RESTAURANT) + distance_km(
        RESTAURANT, Point(52.54, 13.40)
    )
    assert route.distance_km == round(legs, 2)
    assert route.eta_minutes >= legs / 20 * 60 + 4


def test_waiting_limit() -> None:
    now = datetime.now(UTC)
    assert waited_too_long(now - timedelta(seconds=11), now, 10)
    assert not waited_too_long(now - timedelta(seconds=9), now, 10)
