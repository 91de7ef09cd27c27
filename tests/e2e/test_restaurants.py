"""The restaurant's side end to end, through the gateway with every real service running: a
kitchen accepts, cooks and hands over; rejects (refunded, stock back); does not answer (the
same, RESTAURANT_TIMEOUT); is closed (refused before payment); and sees no other restaurant's
orders. The courier simulator's arrival at the kitchen's ready time is in test_couriers.py."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from foodflow.platform.config import Settings

from ..service_auth import as_caller
from .conftest import E2E_ENV, wait_row, wait_stock
from .test_gateway_orders import (
    DEFAULT_KITCHEN,
    Headers,
    carrying,
    courier_of,
    kitchen_staff,
    order_body,
    place,
    sign_up,
    staff,
    stock_of,
    wait_status,
    wait_ticket,
)
from .test_gateway_orders import kitchen_step as step

pytestmark = pytest.mark.e2e


@pytest.fixture
async def api(system: Settings) -> AsyncIterator[httpx.AsyncClient]:
    base = system.service_url(system.gateway_port)
    async with httpx.AsyncClient(base_url=base, timeout=20.0) as client:
        yield client


async def wait_assigned(
    api: httpx.AsyncClient, customer: Headers, order_id: str, timeout: float = 30
) -> None:
    """Until a courier has been sent for the order (whatever its status is by then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        order = (await api.get(f"/orders/{order_id}", headers=customer)).json()
        if "COURIER_ASSIGNED" in {t["status"] for t in order["timeline"]}:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no courier sent for order {order_id} after {timeout}s")


async def payment_of(system: Settings, order_id: str) -> dict[str, Any]:
    caller = as_caller(system, "delivery_service", "payment_service")
    async with httpx.AsyncClient(headers=caller) as plain:
        answer = await plain.get(f"{system.payment_url}/payments/{order_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["payment"])


async def refunds_of(db: asyncpg.Connection, order_id: str) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM payment_ledger WHERE order_id = $1 AND operation = 'REFUND'",
        uuid.UUID(order_id),
    )
    return count


async def test_accepted_prepared_ready_picked_up_and_delivered(
    api: httpx.AsyncClient, db: asyncpg.Connection, test_item: tuple[str, Decimal]
) -> None:
    item_id, price = test_item
    customer, admin = await sign_up(api), await staff(api, db, "admin")
    cook = await kitchen_staff(api, admin, DEFAULT_KITCHEN)
    order_id = await place(api, customer, order_body(item_id, 2))

    ticket = await wait_ticket(api, cook, order_id)
    assert ticket["state"] == "PENDING" and ticket["lines"] == [{"item_id": item_id, "quantity": 2}]
    assert ticket["suggested_ready_in_minutes"] > 0
    accepted = await step(api, cook, order_id, "accept", ready_in_minutes=0.05)
    assert accepted["state"] == "ACCEPTED" and accepted["ready_by"] is not None
    again = await step(api, cook, order_id, "accept", ready_in_minutes=0.05)  # idempotent
    assert again["ready_by"] == accepted["ready_by"]
    await wait_status(api, customer, order_id, "RESTAURANT_ACCEPTED", "COURIER_ASSIGNED")
    await step(api, cook, order_id, "prepare")

    # Ready in 3 s: the courier is sent to be there by then (DISPATCH_TOLERANCE_SECONDS early
    # at most), so at once; the kitchen's and the courier's steps interleave as they come.
    await wait_status(api, customer, order_id, "PREPARING", timeout=30)
    await wait_assigned(api, customer, order_id)
    courier_id = await carrying(api, admin, order_id)
    courier = await courier_of(api, db, admin, courier_id)
    early = await api.post(f"/deliveries/{order_id}/pickup", headers=courier)
    assert early.status_code == 409 and "not ready" in early.json()["detail"], early.text
    arrived = await api.post(f"/deliveries/{order_id}/arrive", headers=courier)
    assert arrived.status_code == 200, arrived.text

    await step(api, cook, order_id, "ready")
    order = await wait_status(api, customer, order_id, "READY_FOR_PICKUP")
    picked = await api.post(f"/deliveries/{order_id}/pickup", headers=courier)
    assert picked.status_code == 200 and picked.json()["status"] == "PICKED_UP", picked.text
    done = await api.post(f"/deliveries/{order_id}/deliver", headers=courier)
    assert done.status_code == 200 and done.json()["status"] == "DELIVERED", done.text

    order = await wait_status(api, customer, order_id, "DELIVERED")
    steps = [t["status"] for t in order["timeline"]]
    assert [s for s in steps if s != "COURIER_ASSIGNED"] == [
        "RECEIVED",
        "PROCESSING",
        "CONFIRMED",
        "RESTAURANT_ACCEPTED",
        "PREPARING",
        "READY_FOR_PICKUP",
        "PICKED_UP",
        "DELIVERED",
    ]
    assert (
        steps.index("RESTAURANT_ACCEPTED")
        < steps.index("COURIER_ASSIGNED")
        < steps.index("READY_FOR_PICKUP")
    )
    assert order["kitchen"]["restaurant_id"] == DEFAULT_KITCHEN
    assert order["kitchen"]["ready_by"] is not None
    assert await stock_of(db, item_id) == 8
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        row = await wait_row(db, uuid.UUID(order_id))
        if row["status"] == "DELIVERED":
            break
        await asyncio.sleep(0.1)
    assert (row["status"], row["version"], row["subtotal"]) == ("DELIVERED", 9, 2 * price)
    history = await db.fetch(
        "SELECT status FROM order_status_history WHERE order_id = $1 ORDER BY version",
        uuid.UUID(order_id),
    )
    assert [h["status"] for h in history] == [t["status"] for t in order["timeline"]]


async def test_a_rejected_order_is_refunded_once_and_its_stock_comes_back(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    test_item: tuple[str, Decimal],
    system: Settings,
) -> None:
    item_id, _ = test_item
    customer, admin = await sign_up(api), await staff(api, db, "admin")
    cook = await kitchen_staff(api, admin, DEFAULT_KITCHEN)
    order_id = await place(api, customer, order_body(item_id, 3))
    await wait_ticket(api, cook, order_id)
    assert await stock_of(db, item_id) == 7

    rejected = await step(api, cook, order_id, "reject", reason="ITEM_UNAVAILABLE")
    assert rejected["state"] == "REJECTED"
    final = await wait_status(api, customer, order_id, "CANCELLED")
    assert final["reason"] == "ITEM_UNAVAILABLE"
    assert [t["status"] for t in final["timeline"]][-2:] == ["RESTAURANT_REJECTED", "CANCELLED"]
    await wait_stock(db, item_id, 10)
    payment = await payment_of(system, order_id)
    assert payment["state"] == "REFUNDED" and payment["refunded_cents"] > 0
    assert await refunds_of(db, order_id) == 1
    # No courier was ever sent for it, and the kitchen cannot take it back.
    assert "COURIER_ASSIGNED" not in [t["status"] for t in final["timeline"]]
    late = await api.post(
        f"/restaurant/orders/{order_id}/accept", json={"ready_in_minutes": 1}, headers=cook
    )
    assert late.status_code == 409, late.text


async def test_a_restaurant_that_does_not_answer_is_timed_out_and_refunded(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    test_item: tuple[str, Decimal],
    system: Settings,
) -> None:
    item_id, _ = test_item
    customer = await sign_up(api)
    order_id = await place(api, customer, order_body(item_id, 2))
    limit = float(E2E_ENV["RESTAURANT_ACCEPT_TIMEOUT_SECONDS"])
    await wait_status(api, customer, order_id, "CONFIRMED")
    started = time.monotonic()
    final = await wait_status(api, customer, order_id, "CANCELLED", timeout=limit + 30)
    assert time.monotonic() - started > limit / 2  # not before the kitchen had its time
    assert final["reason"] == "RESTAURANT_TIMEOUT"
    await wait_stock(db, item_id, 10)
    payment = await payment_of(system, order_id)
    assert payment["state"] == "REFUNDED"
    assert await refunds_of(db, order_id) == 1


async def test_a_closed_restaurant_is_refused_before_payment(
    api: httpx.AsyncClient, db: asyncpg.Connection, test_item: tuple[str, Decimal]
) -> None:
    item_id, _ = test_item
    customer, admin = await sign_up(api), await staff(api, db, "admin")
    cook = await kitchen_staff(api, admin, DEFAULT_KITCHEN)
    closed = await api.put("/restaurant/opening", json={"accepting": False}, headers=cook)
    assert closed.status_code == 200 and closed.json()["open_now"] is False, closed.text
    try:
        menu = (await api.get("/menu")).json()
        kitchen = next(r for r in menu["restaurants"] if r["restaurant_id"] == DEFAULT_KITCHEN)
        assert kitchen["open_now"] is False
        refused = await api.post("/orders", json=order_body(item_id, 1), headers=customer)
        assert refused.status_code == 409, refused.text
        assert "closed" in refused.json()["detail"]
        assert (await api.get("/orders", headers=customer)).json()["total"] == 0
        assert await stock_of(db, item_id) == 10
    finally:
        opened = await api.put("/restaurant/opening", json={"accepting": True}, headers=cook)
        assert opened.status_code == 200 and opened.json()["open_now"] is True, opened.text


async def test_another_restaurants_staff_see_no_such_order(
    api: httpx.AsyncClient, db: asyncpg.Connection, test_item: tuple[str, Decimal]
) -> None:
    item_id, _ = test_item
    customer, admin = await sign_up(api), await staff(api, db, "admin")
    cook = await kitchen_staff(api, admin, DEFAULT_KITCHEN)
    stranger = await kitchen_staff(api, admin, "napoli-oven")
    order_id = await place(api, customer, order_body(item_id, 1))
    await wait_ticket(api, cook, order_id)

    listed = (await api.get("/restaurant/orders", headers=stranger)).json()["tickets"]
    assert order_id not in [t["order_id"] for t in listed]
    for what, body in (
        ("accept", {"ready_in_minutes": 5}),
        ("reject", {"reason": "KITCHEN_BUSY"}),
        ("prepare", {}),
        ("ready", {}),
    ):
        answer = await api.post(
            f"/restaurant/orders/{order_id}/{what}", json=body, headers=stranger
        )
        assert answer.status_code == 404, (what, answer.text)
    # Customers and couriers are not kitchen staff at all.
    for outsider in (customer, await staff(api, db, "courier")):
        answer = await api.get("/restaurant/orders", headers=outsider)
        assert answer.status_code == 403, answer.text
    # Untouched by all that: the kitchen still has it to decide.
    assert (await wait_ticket(api, cook, order_id))["state"] == "PENDING"
    await step(api, cook, order_id, "reject", reason="KITCHEN_BUSY")
    await wait_status(api, customer, order_id, "CANCELLED")
