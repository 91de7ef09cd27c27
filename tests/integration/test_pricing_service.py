"""The pricing service over HTTP (in-process ASGI), catalogue prices from a real inventory
service (its app under uvicorn in a thread, on a free port) over the real PostgreSQL."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest

from foodflow.inventory_service.app import create_app as create_inventory_app
from foodflow.platform.config import Settings
from foodflow.pricing_service.app import create_app
from foodflow.tools.secrets import load_settings

from ..served import served
from ..service_auth import as_caller

pytestmark = pytest.mark.integration

SEED_ORDER: list[dict[str, Any]] = [
    {"item_id": "sushi-set", "quantity": 1, "price": "25.50"},
    {"item_id": "pho-bo", "quantity": 2, "price": "9.00"},
]


@pytest.fixture(scope="module")
def inventory_url(settings: Settings) -> Iterator[str]:
    """A real inventory service for pricing to read the catalogue from."""
    with served(create_inventory_app(settings), "inventory") as url:
        yield url


@pytest.fixture(scope="module")
async def pricing_client(
    settings: Settings, inventory_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The pricing app in-process, its lifespan (and so its inventory client) running, with
    its own key; called as the order manager."""
    own = load_settings(settings, "pricing_service")
    app = create_app(own.model_copy(update={"inventory_url_override": inventory_url}))
    transport = httpx.ASGITransport(app=app)
    saga = as_caller(settings, "order_manager", "pricing_service")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://pricing", headers=saga) as client,
    ):
        yield client


def cents(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def expected_seed_breakdown(settings: Settings) -> dict[str, Decimal]:
    """The seed order priced by hand from the rules file, independently of the domain code."""
    rules = json.loads(settings.pricing_rules_file.read_text())
    subtotal = Decimal("25.50") + 2 * Decimal("9.00")
    discount = Decimal("0.00")
    if subtotal >= Decimal(rules["bulk_discount_threshold"]):
        discount = cents(subtotal * Decimal(rules["bulk_discount_percent"]) / 100)
    after_discount = subtotal - discount
    delivery = Decimal(rules["delivery_fee"])
    if after_discount >= Decimal(rules["free_delivery_threshold"]):
        delivery = Decimal("0.00")
    small = Decimal("0.00")
    if subtotal < Decimal(rules["small_order_threshold"]):
        small = Decimal(rules["small_order_fee"])
    tax = cents((after_discount + delivery + small) * Decimal(rules["tax_percent"]) / 100)
    return {
        "subtotal": subtotal,
        "discount": discount,
        "delivery_fee": delivery,
        "small_order_fee": small,
        "tax": tax,
        "total": after_discount + delivery + small + tax,
    }


def amounts(breakdown: dict[str, Any]) -> dict[str, Decimal]:
    keys = ("subtotal", "discount", "delivery_fee", "small_order_fee", "tax", "total")
    return {key: Decimal(breakdown[key]) for key in keys}


async def test_health_and_ready(pricing_client: httpx.AsyncClient) -> None:
    assert (await pricing_client.get("/health")).json() == {"status": "ok"}
    ready = await pricing_client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"inventory": True}}


async def test_seed_order_is_priced_by_the_rules(
    pricing_client: httpx.AsyncClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="foodflow")

    response = await pricing_client.post(
        "/calculate_price", json={"items": SEED_ORDER, "order_id": "seed-order-1"}
    )

    assert response.status_code == 200
    body = response.json()
    expected = expected_seed_breakdown(settings)
    assert amounts(body["breakdown"]) == expected
    # With the rules shipped in config/pricing_rules.json that is 45.09.
    assert body["breakdown"]["total"] == "45.09"
    assert body["breakdown"]["currency"] == "EUR"
    assert body["breakdown"]["price_mismatches"] == []
    assert [line["line_total"] for line in body["lines"]] == ["25.50", "18.00"]
    assert not any(line["price_mismatch"] for line in body["lines"])
    assert "Calculating price... order_id=seed-order-1" in caplog.text
    assert "Final Price=45.09 order_id=seed-order-1" in caplog.text


async def test_mismatching_client_price_is_charged_at_catalogue_price_and_flagged(
    pricing_client: httpx.AsyncClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    items = [dict(SEED_ORDER[0], price="1.00"), SEED_ORDER[1]]

    response = await pricing_client.post("/calculate_price", json={"items": items})

    assert response.status_code == 200
    body = response.json()
    sushi = body["lines"][0]
    assert sushi["unit_price"] == "25.50"
    assert sushi["client_price"] == "1.00"
    assert sushi["price_mismatch"] is True
    assert body["lines"][1]["price_mismatch"] is False
    assert body["breakdown"]["price_mismatches"] == ["sushi-set"]
    assert amounts(body["breakdown"]) == expected_seed_breakdown(settings)
    assert any(
        record.levelno == logging.WARNING and "sushi-set" in record.getMessage()
        for record in caplog.records
    )


async def test_lines_without_client_price_are_priced_from_the_catalogue(
    pricing_client: httpx.AsyncClient,
) -> None:
    response = await pricing_client.post(
        "/calculate_price", json={"items": [{"item_id": "pho-bo", "quantity": 1}]}
    )
    assert response.status_code == 200
    assert response.json()["lines"][0]["unit_price"] == "9.00"
    assert response.json()["lines"][0]["price_mismatch"] is False


async def test_promo_code_is_applied(pricing_client: httpx.AsyncClient) -> None:
    response = await pricing_client.post(
        "/calculate_price", json={"items": SEED_ORDER, "promo_code": "WELCOME5"}
    )
    assert response.status_code == 200
    breakdown = response.json()["breakdown"]
    assert breakdown["promo_code"] == "WELCOME5"
    assert breakdown["promo_applied"] is True
    assert breakdown["discount"] == "9.35"


async def test_unknown_promo_code_is_422(pricing_client: httpx.AsyncClient) -> None:
    response = await pricing_client.post(
        "/calculate_price", json={"items": SEED_ORDER, "promo_code": "NOPE"}
    )
    assert response.status_code == 422
    assert response.json()["detail"] == "unknown promo code: NOPE"


async def test_unknown_items_are_422_naming_them(pricing_client: httpx.AsyncClient) -> None:
    response = await pricing_client.post(
        "/calculate_price",
        json={
            "items": [
                *SEED_ORDER,
                {"item_id": "no-such-dish", "quantity": 1},
                {"item_id": "another-ghost", "quantity": 1},
            ]
        },
    )
    assert response.status_code == 422
    assert response.json()["detail"] == "unknown items: another-ghost, no-such-dish"
    assert response.json()["type"] == "urn:foodflow:problem:unknown-items"


async def test_invalid_body_is_422(pricing_client: httpx.AsyncClient) -> None:
    response = await pricing_client.post(
        "/calculate_price", json={"items": [{"item_id": "pho-bo", "quantity": 0}]}
    )
    assert response.status_code == 422


async def test_a_batch_prices_each_order_as_alone_and_refuses_only_the_bad_one(
    pricing_client: httpx.AsyncClient,
) -> None:
    alone = await pricing_client.post("/calculate_price", json={"items": SEED_ORDER})
    batch = [
        {"items": SEED_ORDER, "order_id": "batch-1"},
        {"items": [{"item_id": "no-such-dish", "quantity": 1}], "order_id": "batch-2"},
        {"items": SEED_ORDER, "promo_code": "NOPE", "order_id": "batch-3"},
        {"items": SEED_ORDER[:1], "order_id": "batch-4"},
    ]

    response = await pricing_client.post("/calculate_price_batch", json={"items": batch})

    assert response.status_code == 200
    outcomes = response.json()["outcomes"]
    assert [o["status"] for o in outcomes] == [200, 422, 422, 200]
    assert outcomes[0]["result"] == alone.json()
    assert outcomes[1]["detail"] == "unknown items: no-such-dish"
    assert outcomes[1]["error"] == "UnknownItems"
    assert outcomes[2]["detail"] == "unknown promo code: NOPE"
    assert outcomes[3]["result"]["lines"][0]["item_id"] == SEED_ORDER[0]["item_id"]


async def test_an_item_added_to_the_catalogue_is_priced_on_the_next_request(
    pricing_client: httpx.AsyncClient, settings: Settings
) -> None:
    assert (await pricing_client.post("/calculate_price", json={"items": SEED_ORDER})).is_success
    item_id = f"test-{uuid4().hex[:8]}"
    line = {"item_id": item_id, "quantity": 2}
    assert (
        await pricing_client.post("/calculate_price", json={"items": [line]})
    ).status_code == 422
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        await conn.execute(
            "INSERT INTO inventory_items (item_id, name, price, stock) VALUES ($1, $2, 3.25, 5)",
            item_id,
            f"Test item {item_id}",
        )
        response = await pricing_client.post("/calculate_price", json={"items": [line]})
    finally:
        await conn.execute("DELETE FROM inventory_items WHERE item_id = $1", item_id)
        await conn.close()

    assert response.status_code == 200
    assert response.json()["lines"][0]["line_total"] == "6.50"
