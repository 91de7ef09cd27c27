"""The inventory service over HTTP (in-process ASGI) against the real PostgreSQL.

Tests own their rows: items get random ids (`test-<hex>`) and are deleted afterwards,
together with every reservation that mentions them, so seeded stock is never touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest

from foodflow.inventory_service.app import create_app
from foodflow.inventory_service.repository import CatalogueItem, InventoryRepository
from foodflow.platform.config import Settings
from foodflow.platform.db.pool import create_pool

from ..batch_http import post_batch
from ..service_auth import as_caller

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def inventory_db(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool for arranging and checking rows directly, beside the service under test."""
    pool = await create_pool(settings, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


class ItemRows:
    """Creates catalogue rows with random ids, then removes them and their reservations."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.item_ids: list[str] = []

    def new_id(self) -> str:
        item_id = f"test-{uuid4().hex[:8]}"
        self.item_ids.append(item_id)
        return item_id

    async def create(self, stock: int, price: Decimal = Decimal("4.20")) -> str:
        item_id = self.new_id()
        await self.pool.execute(
            "INSERT INTO inventory_items (item_id, name, price, stock) VALUES ($1, $2, $3, $4)",
            item_id,
            f"Test item {item_id}",
            price,
            stock,
        )
        return item_id

    async def stock(self, item_id: str) -> int:
        stock: int = await self.pool.fetchval(
            "SELECT stock FROM inventory_items WHERE item_id = $1", item_id
        )
        return stock

    async def cleanup(self) -> None:
        if not self.item_ids:
            return
        await self.pool.execute(
            "DELETE FROM stock_reservations WHERE items ?| $1::text[]", self.item_ids
        )
        await self.pool.execute(
            "DELETE FROM inventory_items WHERE item_id = ANY($1::text[])", self.item_ids
        )


@pytest.fixture
async def test_items(inventory_db: asyncpg.Pool) -> AsyncIterator[ItemRows]:
    items = ItemRows(inventory_db)
    try:
        yield items
    finally:
        await items.cleanup()


@pytest.fixture(scope="module")
async def inventory_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The inventory app in-process, its lifespan (and so its pool) running; called as the
    order manager, the caller of its stock endpoints."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    saga = as_caller(settings, "order_manager", "inventory_service")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://inventory", headers=saga) as client,
    ):
        yield client


def reserve_body(*lines: tuple[str, int], order_id: str | None = None) -> dict[str, Any]:
    return {
        "order_id": order_id or str(uuid4()),
        "items": [{"item_id": item_id, "quantity": quantity} for item_id, quantity in lines],
    }


async def reserve_all(
    client: httpx.AsyncClient, bodies: list[dict[str, Any]]
) -> list[httpx.Response]:
    """POST every body to /reserve at once and wait for all of them, even when one fails,
    so that no request is still writing while the test cleans up."""
    results = await asyncio.gather(
        *(client.post("/reserve", json=body) for body in bodies), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [result for result in results if isinstance(result, httpx.Response)]


async def reservation_state(pool: asyncpg.Pool, order_id: str) -> str | None:
    state: str | None = await pool.fetchval(
        "SELECT state FROM stock_reservations WHERE order_id = $1::uuid", order_id
    )
    return state


async def test_health_and_ready(inventory_client: httpx.AsyncClient) -> None:
    assert (await inventory_client.get("/health")).json() == {"status": "ok"}
    ready = await inventory_client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"postgres": True, "sweeper": True}}


async def test_menu_lists_seed_items_with_decimal_prices(
    inventory_client: httpx.AsyncClient, settings: Settings
) -> None:
    gateway = as_caller(settings, "gateway", "inventory_service")
    response = await inventory_client.get("/menu", headers=gateway)
    assert response.status_code == 200
    menu = {item["item_id"]: item for item in response.json()}
    assert menu["sushi-set"]["price"] == "25.50"
    assert menu["pho-bo"]["price"] == "9.00"
    assert menu["sushi-set"]["name"]


async def test_unlisted_items_are_off_the_menu_but_priced_from_the_catalogue(
    inventory_client: httpx.AsyncClient, inventory_db: asyncpg.Pool, settings: Settings
) -> None:
    """A bench or chaos item (unlisted) never reaches the public menu; pricing still sees it."""
    hidden, shown = f"bench-{uuid4().hex[:8]}", f"test-{uuid4().hex[:8]}"
    repository = InventoryRepository(inventory_db)
    await repository.put_items(
        [
            CatalogueItem(hidden, "bench item", Decimal("5.00"), 100, listed=False),
            CatalogueItem(shown, "test item", Decimal("4.20"), 100),
        ]
    )
    try:
        gateway = as_caller(settings, "gateway", "inventory_service")
        pricing = as_caller(settings, "pricing_service", "inventory_service")
        menu = (await inventory_client.get("/menu", headers=gateway)).json()
        assert shown in {item["item_id"] for item in menu}
        assert hidden not in {item["item_id"] for item in menu}
        catalogue = (await inventory_client.get("/catalogue", headers=pricing)).json()
        assert {hidden, shown} <= {item["item_id"] for item in catalogue}
        # The catalogue is pricing's alone: the gateway lists and sells only the listed items.
        refused = await inventory_client.get("/catalogue", headers=gateway)
        assert refused.status_code == 403
    finally:
        await repository.remove_items([hidden, shown])
    assert await repository.stock_levels([hidden, shown]) == {}


async def test_check_inventory_reports_each_item_and_reserves_nothing(
    inventory_client: httpx.AsyncClient, test_items: ItemRows
) -> None:
    plenty = await test_items.create(stock=5)
    scarce = await test_items.create(stock=1)
    unknown = test_items.new_id()

    response = await inventory_client.post(
        "/check_inventory",
        json={
            "order_id": "check-1",
            "items": [
                {"item_id": plenty, "quantity": 5},
                {"item_id": scarce, "quantity": 2},
                {"item_id": unknown, "quantity": 1},
            ],
        },
    )

    assert response.status_code == 200
    body = response.json()
    assert body["available"] is False
    by_id = {item["item_id"]: item for item in body["items"]}
    assert by_id[plenty] == {
        "item_id": plenty,
        "requested": 5,
        "in_stock": 5,
        "available": True,
        "known": True,
    }
    assert by_id[scarce]["available"] is False
    assert by_id[scarce]["known"] is True
    assert by_id[unknown] == {
        "item_id": unknown,
        "requested": 1,
        "in_stock": 0,
        "available": False,
        "known": False,
    }
    assert await test_items.stock(plenty) == 5


async def test_check_inventory_of_the_seed_order_is_available(
    inventory_client: httpx.AsyncClient,
) -> None:
    response = await inventory_client.post(
        "/check_inventory",
        json={
            "items": [{"item_id": "sushi-set", "quantity": 1}, {"item_id": "pho-bo", "quantity": 2}]
        },
    )
    assert response.status_code == 200
    assert response.json()["available"] is True


async def test_reserve_takes_stock_once_and_commit_makes_it_final(
    inventory_client: httpx.AsyncClient, test_items: ItemRows, inventory_db: asyncpg.Pool
) -> None:
    first = await test_items.create(stock=10)
    second = await test_items.create(stock=3)
    body = reserve_body((first, 4), (second, 3))
    order_id = body["order_id"]

    reserved = await inventory_client.post("/reserve", json=body)
    again = await inventory_client.post("/reserve", json=body)

    assert reserved.status_code == 200
    assert reserved.json() == {
        "order_id": order_id,
        "state": "RESERVED",
        "reserved": True,
        "unknown_items": [],
        "short_items": [],
    }
    assert again.json() == reserved.json()
    assert await test_items.stock(first) == 6
    assert await test_items.stock(second) == 0

    committed = await inventory_client.post("/commit", json={"order_id": order_id})
    committed_again = await inventory_client.post("/commit", json={"order_id": order_id})
    assert committed.status_code == 200
    assert committed.json()["state"] == "COMMITTED"
    assert committed.json()["reserved"] is True
    assert committed_again.json() == committed.json()
    assert await reservation_state(inventory_db, order_id) == "COMMITTED"

    refused = await inventory_client.post("/release", json={"order_id": order_id})
    assert refused.status_code == 409
    assert "COMMITTED" in refused.json()["detail"]
    assert await test_items.stock(first) == 6

    # A reserve replayed after commit still answers from the record and takes nothing.
    replay = await inventory_client.post("/reserve", json=body)
    assert replay.json()["state"] == "COMMITTED"
    assert await test_items.stock(first) == 6


async def test_release_gives_stock_back_once(
    inventory_client: httpx.AsyncClient, test_items: ItemRows, inventory_db: asyncpg.Pool
) -> None:
    item = await test_items.create(stock=5)
    body = reserve_body((item, 2))
    order_id = body["order_id"]
    assert (await inventory_client.post("/reserve", json=body)).json()["state"] == "RESERVED"
    assert await test_items.stock(item) == 3

    released = await inventory_client.post("/release", json={"order_id": order_id})
    released_again = await inventory_client.post("/release", json={"order_id": order_id})

    assert released.status_code == 200
    assert released.json()["state"] == "RELEASED"
    assert released.json()["reserved"] is False
    assert released_again.json() == released.json()
    assert await test_items.stock(item) == 5
    assert await reservation_state(inventory_db, order_id) == "RELEASED"

    refused = await inventory_client.post("/commit", json={"order_id": order_id})
    assert refused.status_code == 409
    # Neither a replayed reserve takes the stock again.
    replay = await inventory_client.post("/reserve", json=body)
    assert replay.json()["state"] == "RELEASED"
    assert await test_items.stock(item) == 5


async def test_unknown_item_rejects_the_whole_order_without_touching_stock(
    inventory_client: httpx.AsyncClient, test_items: ItemRows
) -> None:
    item = await test_items.create(stock=5)
    unknown = test_items.new_id()
    body = reserve_body((item, 1), (unknown, 1))

    response = await inventory_client.post("/reserve", json=body)

    assert response.status_code == 200
    assert response.json() == {
        "order_id": body["order_id"],
        "state": "REJECTED",
        "reserved": False,
        "unknown_items": [unknown],
        "short_items": [],
    }
    assert await test_items.stock(item) == 5
    # A rejected reservation holds nothing: releasing it is a no-op, committing it a conflict.
    release = await inventory_client.post("/release", json={"order_id": body["order_id"]})
    assert release.json()["state"] == "REJECTED"
    commit = await inventory_client.post("/commit", json={"order_id": body["order_id"]})
    assert commit.status_code == 409


async def test_short_item_rejects_the_whole_order_without_touching_stock(
    inventory_client: httpx.AsyncClient, test_items: ItemRows
) -> None:
    enough = await test_items.create(stock=5)
    short = await test_items.create(stock=1)

    response = await inventory_client.post("/reserve", json=reserve_body((enough, 5), (short, 2)))

    assert response.json()["state"] == "REJECTED"
    assert response.json()["short_items"] == [short]
    assert await test_items.stock(enough) == 5
    assert await test_items.stock(short) == 1


async def test_a_restaurant_marks_an_item_unavailable_then_offers_it_again(
    inventory_client: httpx.AsyncClient, test_items: ItemRows, settings: Settings
) -> None:
    """Off the menu, short for every order (the order fails OUT_OF_STOCK) with its stock kept,
    until the restaurant offers it again."""
    item, other = await test_items.create(stock=5), await test_items.create(stock=5)
    restaurant = as_caller(settings, "restaurant_service", "inventory_service")
    gateway = as_caller(settings, "gateway", "inventory_service")

    off = await inventory_client.put(
        f"/items/{item}/availability", json={"available": False}, headers=restaurant
    )

    assert off.status_code == 200, off.text
    assert (off.json()["item_id"], off.json()["available"], off.json()["stock"]) == (item, False, 5)
    menu = {i["item_id"] for i in (await inventory_client.get("/menu", headers=gateway)).json()}
    assert item not in menu and other in menu
    single = await inventory_client.post("/reserve", json=reserve_body((other, 1), (item, 1)))
    assert (single.json()["state"], single.json()["short_items"]) == ("REJECTED", [item])
    batch = await post_batch(
        inventory_client, "/reserve_batch", [reserve_body((item, 1)), reserve_body((other, 1))]
    )
    assert [o["result"]["state"] for o in batch] == ["REJECTED", "RESERVED"]
    check = await inventory_client.post(
        "/check_inventory", json={"items": [{"item_id": item, "quantity": 1}]}
    )
    assert check.json()["available"] is False
    assert check.json()["items"] == [
        {"item_id": item, "requested": 1, "in_stock": 5, "available": False, "known": True}
    ]
    assert await test_items.stock(item) == 5 and await test_items.stock(other) == 4

    on = await inventory_client.put(
        f"/items/{item}/availability", json={"available": True}, headers=restaurant
    )

    assert on.json()["available"] is True
    menu = {i["item_id"] for i in (await inventory_client.get("/menu", headers=gateway)).json()}
    assert item in menu
    again = await inventory_client.post("/reserve", json=reserve_body((item, 1)))
    assert again.json()["state"] == "RESERVED"


async def test_availability_of_an_unknown_item_is_404_and_only_restaurants_set_it(
    inventory_client: httpx.AsyncClient, test_items: ItemRows, settings: Settings
) -> None:
    restaurant = as_caller(settings, "restaurant_service", "inventory_service")
    unknown = await inventory_client.put(
        f"/items/{test_items.new_id()}/availability", json={"available": False}, headers=restaurant
    )
    assert unknown.status_code == 404 and "no item" in unknown.json()["detail"]
    item = await test_items.create(stock=1)
    for caller in ("gateway", "order_manager"):
        refused = await inventory_client.put(
            f"/items/{item}/availability",
            json={"available": False},
            headers=as_caller(settings, caller, "inventory_service"),
        )
        assert refused.status_code == 403
    bad = await inventory_client.put(
        f"/items/{item}/availability", json={"available": "maybe"}, headers=restaurant
    )
    assert bad.status_code == 422


async def test_lines_of_the_same_item_are_added_up(
    inventory_client: httpx.AsyncClient, test_items: ItemRows
) -> None:
    item = await test_items.create(stock=3)

    response = await inventory_client.post("/reserve", json=reserve_body((item, 2), (item, 2)))

    assert response.json()["state"] == "REJECTED"
    assert response.json()["short_items"] == [item]
    assert await test_items.stock(item) == 3


async def test_commit_or_release_without_reservation_is_404_and_records_nothing(
    inventory_client: httpx.AsyncClient, inventory_db: asyncpg.Pool
) -> None:
    order_id = str(uuid4())
    for path in ("/commit", "/release"):
        response = await inventory_client.post(path, json={"order_id": order_id})
        assert response.status_code == 404
        assert order_id in response.json()["detail"]
    assert await reservation_state(inventory_db, order_id) is None


async def test_invalid_body_is_422(inventory_client: httpx.AsyncClient) -> None:
    response = await inventory_client.post(
        "/reserve", json={"order_id": "not-a-uuid", "items": [{"item_id": "x", "quantity": 0}]}
    )
    assert response.status_code == 422


async def test_fifty_concurrent_reserves_never_oversell(
    inventory_client: httpx.AsyncClient, test_items: ItemRows
) -> None:
    item = await test_items.create(stock=10)

    responses = await reserve_all(inventory_client, [reserve_body((item, 1)) for _ in range(50)])

    assert all(response.status_code == 200 for response in responses)
    states = [response.json()["state"] for response in responses]
    assert states.count("RESERVED") == 10
    assert states.count("REJECTED") == 40
    assert all(
        response.json()["short_items"] == [item]
        for response in responses
        if response.json()["state"] == "REJECTED"
    )
    assert await test_items.stock(item) == 0


async def test_concurrent_reserves_of_one_order_take_stock_once(
    inventory_client: httpx.AsyncClient, test_items: ItemRows
) -> None:
    item = await test_items.create(stock=10)
    body = reserve_body((item, 3))

    responses = await reserve_all(inventory_client, [body] * 10)

    assert {response.json()["state"] for response in responses} == {"RESERVED"}
    assert await test_items.stock(item) == 7


async def test_concurrent_crossing_orders_do_not_deadlock(
    inventory_client: httpx.AsyncClient, test_items: ItemRows
) -> None:
    a = await test_items.create(stock=100)
    b = await test_items.create(stock=100)
    # Half list the items a-then-b, half b-then-a: sorted locking keeps them from deadlocking.
    bodies = [
        reserve_body((a, 1), (b, 1)) if i % 2 else reserve_body((b, 1), (a, 1)) for i in range(40)
    ]

    responses = await reserve_all(inventory_client, bodies)

    assert {response.json()["state"] for response in responses} == {"RESERVED"}
    assert await test_items.stock(a) == 60
    assert await test_items.stock(b) == 60


async def test_reserve_batch_serves_orders_in_order_in_one_go(
    inventory_client: httpx.AsyncClient, test_items: ItemRows
) -> None:
    item = await test_items.create(stock=3)
    unknown = test_items.new_id()
    bodies = [reserve_body((item, 1)) for _ in range(5)] + [reserve_body((unknown, 1))]

    outcomes = await post_batch(inventory_client, "/reserve_batch", bodies)

    assert [o["status"] for o in outcomes] == [200] * 6
    states = [o["result"]["state"] for o in outcomes]
    assert states == ["RESERVED"] * 3 + ["REJECTED"] * 3
    assert outcomes[3]["result"]["short_items"] == [item]
    assert outcomes[5]["result"]["unknown_items"] == [unknown]
    assert [o["result"]["order_id"] for o in outcomes] == [b["order_id"] for b in bodies]
    assert await test_items.stock(item) == 0
    # The same batch again (a retry) changes nothing and gets the same answers.
    again = await post_batch(inventory_client, "/reserve_batch", bodies)
    assert [o["result"]["state"] for o in again] == states
    assert await test_items.stock(item) == 0


async def test_commit_and_release_batches_answer_each_order_on_its_own(
    inventory_client: httpx.AsyncClient, test_items: ItemRows, inventory_db: asyncpg.Pool
) -> None:
    item = await test_items.create(stock=10)
    held, committed = reserve_body((item, 2)), reserve_body((item, 3))
    await post_batch(inventory_client, "/reserve_batch", [held, committed])
    nobody = str(uuid4())

    commits = await post_batch(
        inventory_client, "/commit_batch", [{"order_id": committed["order_id"]}]
    )
    assert commits[0]["result"]["state"] == "COMMITTED"
    releases = await post_batch(
        inventory_client,
        "/release_batch",
        [{"order_id": oid} for oid in (held["order_id"], committed["order_id"], nobody)],
    )

    assert releases[0]["status"] == 200 and releases[0]["result"]["state"] == "RELEASED"
    assert releases[1]["status"] == 409 and "COMMITTED" in releases[1]["detail"]
    assert releases[2]["status"] == 404 and releases[2]["error"] == "ReservationNotFound"
    assert await test_items.stock(item) == 7  # order 1's two units came back, order 2's did not
    assert await reservation_state(inventory_db, committed["order_id"]) == "COMMITTED"


async def test_concurrent_batches_of_crossing_orders_never_oversell_or_deadlock(
    inventory_client: httpx.AsyncClient, test_items: ItemRows
) -> None:
    a = await test_items.create(stock=50)
    b = await test_items.create(stock=50)
    batches = [
        [
            reserve_body((a, 1), (b, 1)) if (i + j) % 2 else reserve_body((b, 1), (a, 1))
            for j in range(20)
        ]
        for i in range(4)
    ]

    results = await asyncio.gather(
        *(post_batch(inventory_client, "/reserve_batch", batch) for batch in batches)
    )

    states = [o["result"]["state"] for outcomes in results for o in outcomes]
    assert states.count("RESERVED") == 50 and states.count("REJECTED") == 30
    assert await test_items.stock(a) == 0
    assert await test_items.stock(b) == 0


async def test_an_empty_or_oversized_batch_is_422(inventory_client: httpx.AsyncClient) -> None:
    empty = await inventory_client.post("/reserve_batch", json={"items": []})
    assert empty.status_code == 422
    big = [{"order_id": str(uuid4())} for _ in range(501)]
    assert (await inventory_client.post("/commit_batch", json={"items": big})).status_code == 422
