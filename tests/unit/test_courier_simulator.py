"""The courier simulator's logic without servers: the route and its timing at a speed, the
courier's moves (ride to the restaurant, arrive, wait for the food, pick up, ride, deliver), and
a rider's answers to a gateway that refuses, throttles, forgets tokens or moves orders on."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from foodflow.contracts.delivery import CarriedDelivery, CourierAssignment, GeoPoint
from foodflow.delivery_service.domain import Point, distance_km
from foodflow.platform.config import Settings
from foodflow.tools import couriers, gateway_api
from foodflow.tools.couriers import CourierLogin, CourierRider, Leg, Move
from foodflow.tools.gateway_api import Answer, Outage

HOME = GeoPoint(lat=52.5210, lon=13.4100)
KITCHEN = GeoPoint(lat=52.5200, lon=13.4050)
DOOR = GeoPoint(lat=52.5290, lon=13.4010)
ORDER = uuid.uuid4()
T0 = datetime(2025, 3, 1, 18, 30, tzinfo=UTC)


def assignment(
    state: str | None,
    *,
    arrived: bool = False,
    food_ready: bool = False,
    ready_by: datetime | None = T0,
) -> CourierAssignment:
    carried = (
        CarriedDelivery(
            order_id=ORDER,
            state=state,
            restaurant_id="tokyo-kitchen",
            restaurant_name="Tokyo Kitchen",
            pickup=KITCHEN,
            ready_by=ready_by,
            food_ready=food_ready,
            arrived_at=T0 if arrived else None,
            address="Torstrasse 1",
            dropoff=DOOR,
            distance_km=Decimal("1.5"),
            eta_minutes=9,
        )
        if state is not None
        else None
    )
    return CourierAssignment(
        courier_id="courier-01",
        name="Anna",
        position=HOME,
        available=carried is None,
        delivery=carried,
    )


def test_a_leg_takes_its_distance_over_the_speed() -> None:
    leg = Leg(Point(52.52, 13.40), Point(52.53, 13.40), "the customer")
    assert leg.km == pytest.approx(1.112, abs=0.001)  # 0.01° of latitude
    assert leg.seconds(20.0) == pytest.approx(leg.km / 20 * 3600)
    assert leg.seconds(3600.0) == pytest.approx(leg.km)  # 1 km a second
    assert leg.seconds(3600.0) * 10 == pytest.approx(leg.seconds(360.0))


def test_a_rider_moves_along_the_leg_and_stops_at_its_end() -> None:
    leg = Leg(Point(52.52, 13.40), Point(52.54, 13.44), "the customer")
    assert leg.position(0.0) == leg.start
    assert leg.position(1.0) == leg.end
    assert leg.position(7.0) == leg.end and leg.position(-1.0) == leg.start
    half = leg.position(0.5)
    assert distance_km(leg.start, half) == pytest.approx(leg.km / 2, rel=0.01)


def test_a_courier_rides_to_the_kitchen_waits_for_the_food_then_rides_to_the_door() -> None:
    assert couriers.next_move(assignment(None)) is None
    to_kitchen = couriers.next_move(assignment("ASSIGNED"))
    assert to_kitchen is not None and to_kitchen.step == "arrive" and to_kitchen.leg is not None
    assert (to_kitchen.leg.start, to_kitchen.leg.end) == (
        Point(HOME.lat, HOME.lon),
        Point(KITCHEN.lat, KITCHEN.lon),
    )
    assert to_kitchen.leg.to == "the restaurant tokyo-kitchen"
    # Food ready before the courier came: still say "I am here" first.
    assert couriers.next_move(assignment("ASSIGNED", food_ready=True)) == to_kitchen
    # At the counter: wait while the kitchen cooks, pick up once it says the food is ready.
    assert couriers.next_move(assignment("ASSIGNED", arrived=True)) == Move(None, None)
    ready = assignment("ASSIGNED", arrived=True, food_ready=True)
    assert couriers.next_move(ready) == Move(None, "pickup")
    to_door = couriers.next_move(assignment("PICKED_UP", arrived=True, food_ready=True))
    assert to_door is not None and to_door.step == "deliver" and to_door.leg is not None
    assert (to_door.leg.start, to_door.leg.end) == (
        Point(KITCHEN.lat, KITCHEN.lon),
        Point(DOOR.lat, DOOR.lon),
    )


def test_at_the_counter_a_courier_asks_again_by_the_ready_by_time() -> None:
    early = assignment("ASSIGNED", arrived=True, ready_by=T0 + timedelta(seconds=1.5)).delivery
    assert early is not None
    assert couriers.counter_wait(early, T0, poll=2.0) == 1.5
    assert couriers.counter_wait(early, T0 - timedelta(minutes=5), poll=2.0) == 2.0
    # Past the ready-by time (the kitchen is late, or its word on its way): often.
    assert couriers.counter_wait(early, T0 + timedelta(minutes=1), poll=2.0) == (
        couriers.COUNTER_POLL_SECONDS
    )
    unknown = assignment("ASSIGNED", arrived=True, ready_by=None).delivery
    assert unknown is not None and couriers.counter_wait(unknown, T0, poll=2.0) == 2.0
    assert couriers.arrival_note(early, T0) == "1.5s before the ready-by time"
    assert couriers.arrival_note(early, T0 + timedelta(seconds=4)) == (
        "2.5s after the ready-by time"
    )


def test_retry_after_is_believed_within_bounds_only() -> None:
    assert gateway_api._seconds("3") == 3.0
    assert gateway_api._seconds("86400") == gateway_api.MAX_RETRY_AFTER_SECONDS
    assert gateway_api._seconds("-5") == 0.0
    assert gateway_api._seconds("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert gateway_api._seconds(None) is None


def test_an_outage_is_logged_once_and_its_end_once(caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage("http://gw")
    with caplog.at_level(logging.INFO, logger="foodflow.tools.gateway_api"):
        outage.answered()  # nothing was wrong: nothing said
        for attempt in range(1, 20):
            outage.on_retry(attempt, ConnectionRefusedError("refused"), 0.1)
        outage.answered()
        outage.answered()
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2
    assert "not answering" in said[0] and "answers again" in said[1]


# --- a rider over a scripted gateway -------------------------------------------------------------


class ScriptedGateway:
    """Answers each (method, path) from a script, in order; records what was asked."""

    def __init__(self, script: dict[tuple[str, str], list[Answer]]) -> None:
        self.script = script
        self.asked: list[tuple[str, str, str | None]] = []
        self.bodies: list[Any] = []
        self.logins = asyncio.Lock()

    async def request(
        self, method: str, path: str, *, token: str | None = None, body: Any = None
    ) -> Answer:
        self.asked.append((method, path, token))
        self.bodies.append(body)
        answers = self.script[(method, path)]
        return answers.pop(0) if len(answers) > 1 else answers[0]


def ok(model: BaseModel) -> Answer:
    return Answer(200, model.model_dump_json().encode())


def token(value: str) -> Answer:
    return Answer(200, f'{{"access_token": "{value}", "expires_in": 3600}}'.encode())


@pytest.fixture
def rider_of() -> Iterator[Any]:
    settings = Settings(COURIER_SIM_POLL_SECONDS=0.01, FOODFLOW_STATE_DIR="/nonexistent")

    def make(gateway: ScriptedGateway) -> CourierRider:
        login = CourierLogin("courier-01", "Anna", "courier-01@foodflow.example", "secret")
        return CourierRider(gateway, login, settings, speed_kmh=1e6)  # type: ignore[arg-type]

    yield make


async def test_a_rider_arrives_waits_picks_up_then_delivers_with_its_own_token(
    rider_of: Any,
) -> None:
    me = f"/deliveries/{ORDER}"
    gateway = ScriptedGateway(
        {
            ("POST", "/auth/login"): [token("t1")],
            ("GET", "/couriers/me"): [
                ok(assignment("ASSIGNED")),
                ok(assignment("ASSIGNED", arrived=True)),
                ok(assignment("ASSIGNED", arrived=True, food_ready=True)),
                ok(assignment("PICKED_UP", arrived=True, food_ready=True)),
                ok(assignment(None)),
            ],
            ("POST", f"{me}/arrive"): [Answer(200, b"{}")],
            ("POST", f"{me}/pickup"): [Answer(200, b"{}")],
            ("POST", f"{me}/deliver"): [Answer(200, b"{}")],
        }
    )
    rider = rider_of(gateway)
    for _ in range(5):
        await rider.ride_once()
    steps = [(m, p) for m, p, _ in gateway.asked if p.startswith("/deliveries")]
    assert steps == [
        ("POST", f"{me}/arrive"),
        ("POST", f"{me}/pickup"),
        ("POST", f"{me}/deliver"),
    ]
    assert {t for m, p, t in gateway.asked if p != "/auth/login"} == {"t1"}


async def test_an_expired_token_means_one_login_more_and_a_refused_step_no_crash(
    rider_of: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = ScriptedGateway(
        {
            ("POST", "/auth/login"): [token("old"), token("new")],
            ("GET", "/couriers/me"): [
                Answer(401, b'{"detail": "expired"}'),
                ok(assignment("ASSIGNED", arrived=True, food_ready=True)),
            ],
            # Cancelled by the customer while the courier rode there.
            ("POST", f"/deliveries/{ORDER}/pickup"): [Answer(409, b'{"detail": "cancelled"}')],
        }
    )
    with caplog.at_level(logging.INFO, logger="foodflow.tools.couriers"):
        await rider_of(gateway).ride_once()
    logins = [a for a in gateway.asked if a[1] == "/auth/login"]
    assert len(logins) == 2
    assert gateway.asked[-1][2] == "new"
    assert any(
        "refused (409" in r.getMessage() and str(ORDER) in r.getMessage() for r in caplog.records
    )


async def test_a_throttled_login_waits_and_a_wrong_password_is_said_not_retried_at_once(
    rider_of: Any,
) -> None:
    gateway = ScriptedGateway({("POST", "/auth/login"): [Answer(401, b"{}")]})
    with pytest.raises(gateway_api.Refused, match=r"refused \(401\).*password"):
        await rider_of(gateway).ride_once()
    throttled = ScriptedGateway({("POST", "/auth/login"): [Answer(429, b"{}", retry_after=0.01)]})
    with pytest.raises(gateway_api.Refused, match="throttled"):
        await rider_of(throttled).ride_once()


async def test_an_order_taken_away_mid_ride_is_not_reported(rider_of: Any) -> None:
    gateway = ScriptedGateway(
        {
            ("POST", "/auth/login"): [token("t")],
            ("GET", "/couriers/me"): [ok(assignment("ASSIGNED")), ok(assignment(None))],
        }
    )
    rider = rider_of(gateway)
    rider.speed_kmh = 1.0  # a long ride: the rider checks on the way
    carried = assignment("ASSIGNED").delivery
    assert carried is not None
    leg = couriers.Leg(Point(52.52, 13.40), Point(52.53, 13.40), "the restaurant")
    assert not await rider.ride(leg, carried)
    assert all(not p.startswith("/deliveries") for _, p, _ in gateway.asked)


async def test_a_rider_waits_out_429s_then_backs_off_with_the_reason(rider_of: Any) -> None:
    gateway = ScriptedGateway(
        {
            ("POST", "/auth/login"): [token("t")],
            ("GET", "/couriers/me"): [Answer(429, b"{}", retry_after=0.01)],
        }
    )
    with pytest.raises(gateway_api.Refused, match="answered 429 3 times"):
        await rider_of(gateway).ride_once()
    assert [p for _, p, _ in gateway.asked].count("/couriers/me") == gateway_api.CALL_ATTEMPTS
