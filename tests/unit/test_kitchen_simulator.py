"""The simulator's kitchens without servers: which orders they answer how, the demo's time for
cooking, when they look again, and a kitchen's steps over a scripted gateway. Also what
`foodflow up` tells the delivery service, and when the command line stops following an order."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from foodflow.cli import _simulated_speed
from foodflow.contracts.orders import DeliveryAddress, OrderStatus, OrderStatusUpdate
from foodflow.contracts.restaurant import TicketLine, Tickets, TicketState, TicketView
from foodflow.platform.config import Settings
from foodflow.tools import kitchens
from foodflow.tools.customer import follow_until
from foodflow.tools.gateway_api import Answer, Refused
from foodflow.tools.kitchens import KitchenStaff, KitchenStep, StaffLogin
from foodflow.tools.tracking import finished

from .test_courier_simulator import ScriptedGateway, ok, token

T0 = datetime(2025, 3, 1, 18, 30, tzinfo=UTC)


def ticket(
    state: TicketState, *, ready_by: datetime | None = None, suggested: float = 12.0
) -> TicketView:
    return TicketView(
        order_id=uuid.uuid4(),
        restaurant_id="tokyo-kitchen",
        state=state,
        lines=[TicketLine(item_id="ramen", quantity=2)],
        suggested_ready_in_minutes=suggested,
        ready_by=ready_by,
        received_at=T0,
        updated_at=T0,
    )


def steps_for(*tickets: TicketView, share: float = 0.0) -> list[KitchenStep]:
    return kitchens.kitchen_steps(tickets, T0, reject_share=share, seconds_per_minute=0.5)


def test_a_share_of_orders_is_rejected_the_same_way_every_time() -> None:
    orders = [uuid.uuid4() for _ in range(4000)]
    assert not any(kitchens.rejects(o, 0.0) for o in orders)
    assert all(kitchens.rejects(o, 1.0) for o in orders)
    rejected = sum(kitchens.rejects(o, 0.25) for o in orders)
    assert 800 < rejected < 1200
    assert [kitchens.rejects(o, 0.25) for o in orders] == [
        kitchens.rejects(o, 0.25) for o in orders
    ]


def test_the_kitchens_time_runs_at_the_demos_pace() -> None:
    # 12 minutes at 0.5 s a minute: ready in 6 s, which is 0.1 of a minute.
    assert kitchens.ready_in_minutes(ticket(TicketState.PENDING), 0.5) == pytest.approx(0.1)
    assert kitchens.ready_in_minutes(ticket(TicketState.PENDING), 60.0) == 12.0
    assert kitchens.ready_in_minutes(ticket(TicketState.PENDING, suggested=0), 0.5) == 0.0


def test_a_kitchen_answers_pending_orders_cooks_what_it_accepted_and_reports_what_is_due() -> None:
    pending = ticket(TicketState.PENDING)
    accepted = ticket(TicketState.ACCEPTED)
    due = ticket(TicketState.PREPARING, ready_by=T0 - timedelta(seconds=1))
    cooking = ticket(TicketState.PREPARING, ready_by=T0 + timedelta(seconds=5))
    ready = ticket(TicketState.READY, ready_by=T0)
    steps = steps_for(pending, accepted, due, cooking, ready)
    assert steps == [
        KitchenStep(pending.order_id, "accept", {"ready_in_minutes": pytest.approx(0.1)}),
        KitchenStep(accepted.order_id, "prepare", {}),
        KitchenStep(due.order_id, "ready", {}),
    ]
    [rejected] = steps_for(pending, share=1.0)
    assert (rejected.step, rejected.body["reason"]) == ("reject", "KITCHEN_BUSY")


def test_a_kitchen_looks_again_when_the_next_dish_is_due() -> None:
    cooking = ticket(TicketState.PREPARING, ready_by=T0 + timedelta(seconds=0.7))
    later = ticket(TicketState.PREPARING, ready_by=T0 + timedelta(seconds=30))
    assert kitchens.next_look([cooking, later], T0, poll=2.0) == pytest.approx(0.7)
    assert kitchens.next_look([later], T0, poll=2.0) == 2.0
    assert kitchens.next_look([], T0, poll=2.0) == 2.0
    overdue = ticket(TicketState.PREPARING, ready_by=T0 - timedelta(seconds=3))
    assert kitchens.next_look([overdue], T0, poll=2.0) == 0.0


def test_silent_restaurants_are_a_comma_separated_list() -> None:
    settings = Settings(KITCHEN_SIM_SILENT=" napoli-oven, ,tokyo-kitchen ")
    assert kitchens.silent_restaurants(settings) == {"napoli-oven", "tokyo-kitchen"}
    assert kitchens.silent_restaurants(Settings()) == frozenset()


# --- a kitchen over a scripted gateway ---------------------------------------------------------


@pytest.fixture
def kitchen_of() -> Iterator[Any]:
    settings = Settings(
        COURIER_SIM_POLL_SECONDS=0.01,
        KITCHEN_SIM_SECONDS_PER_MINUTE=0.5,
        FOODFLOW_STATE_DIR="/nonexistent",
    )

    def make(gateway: ScriptedGateway) -> KitchenStaff:
        login = StaffLogin(
            "tokyo-kitchen", "Tokyo Kitchen staff", "tokyo-kitchen@foodflow.example", "secret"
        )
        return KitchenStaff(gateway, login, settings)  # type: ignore[arg-type]

    yield make


async def test_a_kitchen_accepts_with_its_own_token_and_a_cancelled_order_is_no_crash(
    kitchen_of: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pending, gone = ticket(TicketState.PENDING), ticket(TicketState.ACCEPTED)
    gateway = ScriptedGateway(
        {
            ("POST", "/auth/login"): [token("k1")],
            ("GET", "/restaurant/orders"): [ok(Tickets(tickets=[pending, gone]))],
            ("POST", f"/restaurant/orders/{pending.order_id}/accept"): [Answer(200, b"{}")],
            # Cancelled by the customer meanwhile.
            ("POST", f"/restaurant/orders/{gone.order_id}/prepare"): [
                Answer(409, b'{"detail": "the order is cancelled"}')
            ],
        }
    )
    with caplog.at_level(logging.INFO, logger="foodflow.tools.kitchens"):
        await kitchen_of(gateway).serve_once()
    posted = [
        (p, b) for (m, p, _), b in zip(gateway.asked, gateway.bodies, strict=True) if m == "POST"
    ]
    assert posted[1:] == [
        (f"/restaurant/orders/{pending.order_id}/accept", {"ready_in_minutes": pytest.approx(0.1)}),
        (f"/restaurant/orders/{gone.order_id}/prepare", {}),
    ]
    assert {t for _, p, t in gateway.asked if p != "/auth/login"} == {"k1"}
    assert any("refused (409" in r.getMessage() for r in caplog.records)


async def test_a_kitchen_refused_its_orders_backs_off_with_the_reason(kitchen_of: Any) -> None:
    gateway = ScriptedGateway(
        {
            ("POST", "/auth/login"): [token("k1")],
            ("GET", "/restaurant/orders"): [Answer(403, b'{"detail": "not bound"}')],
        }
    )
    with pytest.raises(Refused, match="403"):
        await kitchen_of(gateway).serve_once()


# --- `foodflow up` and following an order ------------------------------------------------------


def test_the_delivery_service_plans_at_the_simulators_speed_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("COURIER_SPEED_KMH", raising=False)
    settings = Settings(_env_file=None, COURIER_SIM_SPEED_KMH=3600)
    assert _simulated_speed(settings, simulate=True) == {"COURIER_SPEED_KMH": "3600.0"}
    assert _simulated_speed(settings, simulate=False) == {}
    chosen = Settings(COURIER_SIM_SPEED_KMH=3600, COURIER_SPEED_KMH=25)
    assert _simulated_speed(chosen, simulate=True) == {}


def update(status: OrderStatus, address: DeliveryAddress | None) -> OrderStatusUpdate:
    return OrderStatusUpdate(
        order_id=uuid.uuid4(),
        user_id="u",
        status=status,
        version=3,
        created_at=T0,
        delivery_address=address,
    )


def test_an_order_with_an_address_is_followed_past_confirmed() -> None:
    address = DeliveryAddress(address="Torstrasse 1", lat=52.529, lon=13.401)
    assert finished(update(OrderStatus.CONFIRMED, None))  # the seed's: no kitchen, no courier
    assert not finished(update(OrderStatus.CONFIRMED, address))
    assert not finished(update(OrderStatus.RESTAURANT_REJECTED, address))
    assert not finished(update(OrderStatus.READY_FOR_PICKUP, address))
    assert finished(update(OrderStatus.DELIVERED, address))
    assert finished(update(OrderStatus.CANCELLED, address))


def test_following_until_a_status_stops_once_the_timeline_holds_it() -> None:
    reached = follow_until("preparing")

    def order(status: str, *passed: str) -> dict[str, Any]:
        return {"status": status, "timeline": [{"status": s} for s in (*passed, status)]}

    assert not reached(order("RESTAURANT_ACCEPTED", "CONFIRMED"))
    # PREPARING came and went between two looks: reached all the same.
    assert reached(order("READY_FOR_PICKUP", "RESTAURANT_ACCEPTED", "PREPARING"))
    assert reached(order("CANCELLED", "RESTAURANT_REJECTED"))


def test_the_staff_commands_know_every_ticket_state_and_rejection_reason() -> None:
    """`foodflow restaurant` spells them out (the contracts cost a command's start-up time)."""
    from typing import get_args

    from foodflow.contracts.restaurant import RejectReason
    from foodflow.tools import restaurant

    assert tuple(TicketState) == restaurant.TICKET_STATES
    assert set(restaurant.REJECT_REASONS) == set(get_args(RejectReason))
