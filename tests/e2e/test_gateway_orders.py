"""The public order API end to end: users, payment, delivery and cancellation, through the
gateway with every real service running."""

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

from foodflow.gateway.security import hash_password
from foodflow.platform.config import Settings

from ..service_auth import as_caller
from .conftest import wait_row, wait_stock

pytestmark = pytest.mark.e2e

ADDRESS = {"address": "Torstrasse 1, Berlin", "lat": 52.529, "lon": 13.401}
Headers = dict[str, str]


@pytest.fixture
async def api(system: Settings) -> AsyncIterator[httpx.AsyncClient]:
    base = system.service_url(system.gateway_port)
    async with httpx.AsyncClient(base_url=base, timeout=20.0) as client:
        yield client


async def sign_up(api: httpx.AsyncClient) -> Headers:
    email = f"e2e-{uuid.uuid4().hex[:10]}@example.com"
    created = await api.post(
        "/users", json={"email": email, "name": "E2E", "password": "correct horse"}
    )
    assert created.status_code == 202, created.text
    return await log_in(api, email, "correct horse")


async def log_in(api: httpx.AsyncClient, email: str, password: str) -> Headers:
    answer = await api.post("/auth/login", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def staff(api: httpx.AsyncClient, db: asyncpg.Connection, role: str) -> Headers:
    email = f"{role}-{uuid.uuid4().hex[:10]}@example.com"
    await db.execute(
        "INSERT INTO users (user_id, email, name, password_hash, role) VALUES ($1, $2, $3, $4, $5)",
        uuid.uuid4(),
        email,
        role,
        hash_password("staff password"),
        role,
    )
    return await log_in(api, email, "staff password")


async def courier_of(
    api: httpx.AsyncClient, db: asyncpg.Connection, staff_headers: Headers, courier_id: str
) -> Headers:
    """A courier account bound to `courier_id`, made by staff as an operator would, logged in."""
    email = f"rider-{uuid.uuid4().hex[:10]}@example.com"
    body = {"email": email, "name": "Rider", "password": "staff password", "courier_id": courier_id}
    created = await api.post("/couriers/accounts", json=body, headers=staff_headers)
    assert created.status_code == 201, created.text
    return await log_in(api, email, "staff password")


async def carrying(
    api: httpx.AsyncClient, staff_headers: Headers, order_id: str, timeout: float = 10
) -> str:
    """The courier carrying the order, from the dashboard's courier board. The order's status
    is stored (and announced) inside the delivery's transaction, just before it commits: the
    board may show the courier a moment after the status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        board = (await api.get("/dashboard/couriers", headers=staff_headers)).json()
        for courier in board["couriers"]:
            if courier["current_order"] == order_id:
                return str(courier["courier_id"])
        await asyncio.sleep(0.1)
    raise AssertionError(f"no courier carries order {order_id} after {timeout}s")


def order_body(item_id: str, quantity: int = 2, **extra: Any) -> dict[str, Any]:
    return {
        "items": [{"item_id": item_id, "quantity": quantity}],
        "delivery_address": ADDRESS,
        **extra,
    }


async def place(api: httpx.AsyncClient, headers: Headers, body: dict[str, Any]) -> str:
    answer = await api.post("/orders", json=body, headers=headers)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status_url"] == f"/orders/{answer.json()['order_id']}"
    return str(answer.json()["order_id"])


async def wait_status(
    api: httpx.AsyncClient, headers: Headers, order_id: str, *statuses: str, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = (await api.get(f"/orders/{order_id}", headers=headers)).json()
        if last.get("status") in statuses:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"order {order_id} not {statuses} after {timeout}s: {last}")


async def stock_of(db: asyncpg.Connection, item_id: str) -> int:
    stock: int = await db.fetchval("SELECT stock FROM inventory_items WHERE item_id = $1", item_id)
    return stock


# Items no restaurant lists (each test's own `test_item`) are cooked by the default kitchen.
DEFAULT_KITCHEN = "central-kitchen"


async def kitchen_staff(
    api: httpx.AsyncClient, admin: Headers, restaurant_id: str = DEFAULT_KITCHEN
) -> Headers:
    """A staff account of `restaurant_id`, made by an operator, logged in."""
    email = f"kitchen-{uuid.uuid4().hex[:10]}@example.com"
    body = {
        "email": email,
        "name": "Cook",
        "password": "staff password",
        "restaurant_id": restaurant_id,
    }
    created = await api.post("/restaurants/accounts", json=body, headers=admin)
    assert created.status_code == 201, created.text
    return await log_in(api, email, "staff password")


async def wait_ticket(
    api: httpx.AsyncClient, cook: Headers, order_id: str, timeout: float = 30
) -> dict[str, Any]:
    """The order's ticket as the kitchen's staff list it, once it has arrived."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = await api.get("/restaurant/orders", headers=cook)
        assert answer.status_code == 200, answer.text
        for ticket in answer.json()["tickets"]:
            if ticket["order_id"] == order_id:
                return dict(ticket)
        await asyncio.sleep(0.1)
    raise AssertionError(f"no ticket for order {order_id} after {timeout}s")


async def kitchen_step(
    api: httpx.AsyncClient, cook: Headers, order_id: str, what: str, **body: Any
) -> dict[str, Any]:
    answer = await api.post(f"/restaurant/orders/{order_id}/{what}", json=body, headers=cook)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def cooked(
    api: httpx.AsyncClient, cook: Headers, customer: Headers, order_id: str, timeout: float = 30
) -> dict[str, Any]:
    """The kitchen accepts the order, ready at once, and hands it over; a courier is sent for
    it. The order once both have happened (whichever came first)."""
    await wait_ticket(api, cook, order_id)
    await kitchen_step(api, cook, order_id, "accept", ready_in_minutes=0)
    await kitchen_step(api, cook, order_id, "ready")
    deadline = time.monotonic() + timeout
    order: dict[str, Any] = {}
    while time.monotonic() < deadline:
        order = (await api.get(f"/orders/{order_id}", headers=customer)).json()
        if {"COURIER_ASSIGNED", "READY_FOR_PICKUP"} <= {t["status"] for t in order["timeline"]}:
            return order
        await asyncio.sleep(0.1)
    raise AssertionError(f"order {order_id} not ready with a courier after {timeout}s: {order}")


async def test_order_is_delivered_and_persisted_with_its_timeline(
    api: httpx.AsyncClient, db: asyncpg.Connection, test_item: tuple[str, Decimal]
) -> None:
    item_id, price = test_item
    customer, admin = await sign_up(api), await staff(api, db, "admin")
    body = order_body(item_id, 2)
    body["items"][0]["price"] = "0.01"  # the client's price is ignored
    order_id = await place(api, customer, body)
    cook = await kitchen_staff(api, admin)
    await wait_ticket(api, cook, order_id)
    await kitchen_step(api, cook, order_id, "accept", ready_in_minutes=0)

    assigned = await wait_status(api, customer, order_id, "COURIER_ASSIGNED")
    assert "courier" in assigned["detail"] and "ETA" in assigned["detail"]
    assert assigned["items"][0]["unit_price"] == str(price)
    assert Decimal(assigned["price"]["subtotal"]) == 2 * price

    courier_id = await carrying(api, admin, order_id)
    courier = await courier_of(api, db, admin, courier_id)
    board = (await api.get("/dashboard/couriers", headers=admin)).json()["couriers"]
    another = next(c["courier_id"] for c in board if c["courier_id"] != courier_id)
    for refused_to in (
        customer,
        await staff(api, db, "courier"),  # bound to no courier
        await courier_of(api, db, admin, another),
    ):
        refused = await api.post(f"/deliveries/{order_id}/pickup", headers=refused_to)
        assert refused.status_code == 403, refused.text
    await kitchen_step(api, cook, order_id, "ready")
    await wait_status(api, customer, order_id, "READY_FOR_PICKUP")
    picked = await api.post(f"/deliveries/{order_id}/pickup", headers=courier)
    assert picked.status_code == 200 and picked.json()["status"] == "PICKED_UP"
    too_late = await api.post(f"/orders/{order_id}/cancel", headers=customer)
    assert too_late.status_code == 409 and "no longer be cancelled" in too_late.json()["detail"]
    done = await api.post(f"/deliveries/{order_id}/deliver", headers=courier)
    assert done.status_code == 200 and done.json()["status"] == "DELIVERED"

    final = await wait_status(api, customer, order_id, "DELIVERED")
    assert [t["status"] for t in final["timeline"]] == [
        "RECEIVED",
        "PROCESSING",
        "CONFIRMED",
        "RESTAURANT_ACCEPTED",
        "COURIER_ASSIGNED",  # ready at once: the courier is sent at once
        "READY_FOR_PICKUP",
        "PICKED_UP",
        "DELIVERED",
    ]
    assert await stock_of(db, item_id) == 8
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        row = await wait_row(db, uuid.UUID(order_id))
        if row["status"] == "DELIVERED":
            break
        await asyncio.sleep(0.1)
    assert (row["status"], row["version"], row["subtotal"]) == ("DELIVERED", 8, 2 * price)
    history = await db.fetch(
        "SELECT status FROM order_status_history WHERE order_id = $1 ORDER BY version",
        uuid.UUID(order_id),
    )
    assert [h["status"] for h in history] == [t["status"] for t in final["timeline"]]


async def test_declined_card_fails_the_order_and_gives_stock_back(
    api: httpx.AsyncClient, db: asyncpg.Connection, test_item: tuple[str, Decimal]
) -> None:
    item_id, _ = test_item
    customer = await sign_up(api)
    order_id = await place(api, customer, order_body(item_id, 3, payment_token="tok_declined"))
    final = await wait_status(api, customer, order_id, "FAILED", "CONFIRMED", "COURIER_ASSIGNED")
    assert (final["status"], final["reason"]) == ("FAILED", "PAYMENT_DECLINED")
    await wait_stock(db, item_id, 10)


async def test_cancel_after_confirmation_refunds_and_gives_stock_back(
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    test_item: tuple[str, Decimal],
    system: Settings,
) -> None:
    item_id, _ = test_item
    customer = await sign_up(api)
    order_id = await place(api, customer, order_body(item_id, 4))
    await wait_status(api, customer, order_id, "CONFIRMED", "COURIER_ASSIGNED")
    assert await stock_of(db, item_id) == 6
    cancelled = await api.post(f"/orders/{order_id}/cancel", headers=customer)
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["status"], cancelled.json()["reason"]) == (
        "CANCELLED",
        "CUSTOMER_CANCELLED",
    )
    assert await stock_of(db, item_id) == 10
    delivery = as_caller(system, "delivery_service", "payment_service")
    async with httpx.AsyncClient(headers=delivery) as plain:
        payment = (await plain.get(f"{system.payment_url}/payments/{order_id}")).json()["payment"]
    assert payment["state"] == "REFUNDED" and payment["refunded_cents"] > 0
    courier_busy = await db.fetchval(
        "SELECT count(*) FROM couriers WHERE current_order = $1", uuid.UUID(order_id)
    )
    assert courier_busy == 0
    again = await api.post(f"/orders/{order_id}/cancel", headers=customer)
    assert again.status_code == 409 and "cancelled already" in again.json()["detail"]
    assert (await wait_row(db, uuid.UUID(order_id)))["status"] in ("CONFIRMED", "CANCELLED")


async def test_other_customers_orders_are_not_found_but_admins_see_them(
    api: httpx.AsyncClient, db: asyncpg.Connection, test_item: tuple[str, Decimal]
) -> None:
    item_id, _ = test_item
    owner, stranger, admin = await sign_up(api), await sign_up(api), await staff(api, db, "admin")
    order_id = await place(api, owner, order_body(item_id, 1))
    for call in (
        api.get(f"/orders/{order_id}", headers=stranger),
        api.post(f"/orders/{order_id}/cancel", headers=stranger),
    ):
        answer = await call
        assert answer.status_code == 404 and "no order" in answer.json()["detail"]
    assert (await api.get(f"/orders/{order_id}", headers=admin)).status_code == 200
    mine = (await api.get("/orders", headers=owner)).json()
    assert mine["total"] == 1 and mine["items"][0]["order_id"] == order_id
    assert (await api.get("/orders", headers=stranger)).json()["total"] == 0
    await wait_status(api, owner, order_id, "COURIER_ASSIGNED", "CONFIRMED")
    await api.post(f"/orders/{order_id}/cancel", headers=owner)  # frees the courier


async def test_the_same_idempotency_key_places_one_order(
    api: httpx.AsyncClient, db: asyncpg.Connection, test_item: tuple[str, Decimal]
) -> None:
    item_id, _ = test_item
    customer = await sign_up(api)
    headers = {**customer, "Idempotency-Key": uuid.uuid4().hex}
    first, second = await asyncio.gather(
        place(api, headers, order_body(item_id, 1)), place(api, headers, order_body(item_id, 1))
    )
    assert first == second
    listed = (await api.get("/orders", headers=customer)).json()
    assert listed["total"] == 1
    other = await api.post("/orders", json=order_body(item_id, 2), headers=headers)
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]
    await wait_status(api, customer, first, "COURIER_ASSIGNED", "CONFIRMED")
    assert await stock_of(db, item_id) == 9  # taken once
    await api.post(f"/orders/{first}/cancel", headers=customer)


async def test_bad_requests_get_clear_errors(api: httpx.AsyncClient) -> None:
    customer = await sign_up(api)
    unknown = await api.post("/orders", json=order_body("no-such-dish"), headers=customer)
    assert unknown.status_code == 422 and "no-such-dish" in unknown.json()["detail"]
    anonymous = await api.post("/orders", json=order_body("pho-bo"))
    assert anonymous.status_code == 401
    forged = await api.get("/orders", headers={"Authorization": "Bearer not.a.token"})
    assert forged.status_code == 401
    email = f"rate-{uuid.uuid4().hex[:8]}@example.com"
    body = {"email": email, "name": "R", "password": "violet staple orbit"}
    first = await api.post("/users", json=body)
    dup = await api.post("/users", json=body)
    assert first.status_code == dup.status_code == 202 and first.json() == dup.json()
    weak = await api.post("/users", json=body | {"email": f"w{email}", "password": "12345678"})
    assert weak.status_code == 422
    codes = [
        (await api.post("/auth/login", json={"email": email, "password": "wrong"})).status_code
        for _ in range(7)
    ]
    assert codes[:5] == [401] * 5 and codes[-1] == 429
