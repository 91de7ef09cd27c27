"""Input the stores cannot hold is a 4xx, never a 500 (issue 12, finding 6), and weak passwords
are refused; a Kafka order with such text is refused by the order manager's parsing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from pydantic import ValidationError

from foodflow.contracts.orders import ValidatedOrder
from foodflow.contracts.pricing import PriceRequest
from foodflow.contracts.text import storable_text
from foodflow.order_manager.messages import Accepted, InvalidMessage, read_order
from foodflow.orders.lifecycle import Order

from .conftest import STRONG_PASSWORD, an_address, an_email

pytestmark = pytest.mark.integration

ADDRESS = {"address": "1 Test Street", "lat": 48.85, "lon": 2.35}


async def logged_in(client: httpx.AsyncClient) -> dict[str, str]:
    email = an_email()
    created = await client.post(
        "/users", json={"email": email, "name": "Sec", "password": STRONG_PASSWORD}
    )
    assert created.status_code == 202, created.text
    answer = await client.post("/auth/login", json={"email": email, "password": STRONG_PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def as_json(body: dict[str, Any]) -> dict[str, Any]:
    """Request arguments for `body` as JSON with \\u escapes (httpx's own encoder writes UTF-8,
    which has no unpaired surrogates)."""
    return {"content": json.dumps(body), "headers": {"content-type": "application/json"}}


def order(**changes: Any) -> dict[str, Any]:
    return {"items": [{"item_id": "pho-bo", "quantity": 1}], "delivery_address": ADDRESS} | changes


@pytest.mark.parametrize(
    "body",
    [
        order(promo_code="SAVE\u000010"),
        order(promo_code="\ud800"),
        order(delivery_address=ADDRESS | {"address": "1 Rue\ud83d"}),
        order(delivery_address=ADDRESS | {"lat": 91}),
    ],
    ids=["nul-promo", "surrogate-promo", "surrogate-address", "lat-91"],
)
async def test_text_and_numbers_the_stores_cannot_hold_are_422(
    client_from: Callable[[str], httpx.AsyncClient], body: dict[str, Any]
) -> None:
    async with client_from(an_address()) as client:
        headers = await logged_in(client)
        request = as_json(body)
        answer = await client.post(
            "/orders", content=request["content"], headers=headers | request["headers"]
        )
    assert answer.status_code == 422, answer.text


@pytest.mark.parametrize("number", ["1e999", "-1e999", "NaN", "Infinity"])
async def test_non_finite_coordinates_are_422(
    client_from: Callable[[str], httpx.AsyncClient], number: str
) -> None:
    raw = orjson.dumps(order(delivery_address=ADDRESS | {"lat": 0})).replace(
        b'"lat":0', b'"lat":' + number.encode()
    )
    async with client_from(an_address()) as client:
        headers = await logged_in(client) | {"content-type": "application/json"}
        answer = await client.post("/orders", content=raw, headers=headers)
    assert answer.status_code == 422, answer.text


@pytest.mark.parametrize(
    "query", ["offset=9223372036854775808", "offset=1000001", "offset=-1", "limit=101"]
)
async def test_page_bounds_are_422(
    client_from: Callable[[str], httpx.AsyncClient], query: str
) -> None:
    async with client_from(an_address()) as client:
        headers = await logged_in(client)
        answer = await client.get(f"/orders?{query}", headers=headers)
    assert answer.status_code == 422, answer.text


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("password", "at least 10 characters"),
        ("12345678", "at least 10 characters"),
        ("password12", "too weak"),
        ("1234567890", "too weak"),
        ("qwertyuiop", "too weak"),
    ],
)
async def test_short_and_common_passwords_are_422(
    client_from: Callable[[str], httpx.AsyncClient], password: str, why: str
) -> None:
    async with client_from(an_address()) as client:
        answer = await client.post(
            "/users", json={"email": an_email(), "name": "Weak", "password": password}
        )
    assert answer.status_code == 422, answer.text
    assert why in answer.text


async def test_nul_and_surrogates_in_sign_up_are_422(
    client_from: Callable[[str], httpx.AsyncClient],
) -> None:
    async with client_from(an_address()) as client:
        for field, value in [("name", "A\u0000B"), ("name", "\udc00"), ("password", "x\ud800" * 6)]:
            body = {"email": an_email(), "name": "N", "password": STRONG_PASSWORD, field: value}
            answer = await client.post("/users", **as_json(body))
            assert answer.status_code == 422, (field, answer.text)


# --- the contracts and the Kafka intake (no server) --------------------------------------------

SEED_ORDER = {"user_id": "user-001", "items": [{"item_id": "sushi-set", "quantity": 1}]}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (b'"user_id": "a\\u0000b"', "user_id: Value error, text must not contain NUL"),
        (b'"user_id": "u", "promo_code": "X\\u0000"', "promo_code: Value error, text must not"),
    ],
    ids=["nul-user", "nul-promo"],
)
def test_a_kafka_order_with_nul_is_refused_with_its_id(fields: bytes, reason: str) -> None:
    """Refused with its id and user, the order manager fails it (FAILED, INVALID_ORDER) and
    dead-letters the message; before, it was charged and then could not be stored."""
    order_id = uuid.uuid4()
    read = read_order(_order_message(order_id, fields), "validated_orders", 0, 7)
    assert isinstance(read, InvalidMessage), read
    assert read.order_id == order_id
    assert reason in read.error
    assert read.user_id in (None, "u")  # "a\x00b" would make the FAILED event unstorable
    Order.reject(read.order_id, read.user_id or "unknown", read.error)  # what the intake does


def test_a_kafka_order_with_an_infinite_coordinate_is_refused() -> None:
    fields = b'"user_id": "u", "delivery_address": {"address": "x", "lat": 1e999, "lon": 0}'
    read = read_order(_order_message(uuid.uuid4(), fields), "validated_orders", 0, 7)
    assert isinstance(read, InvalidMessage), read
    assert "delivery_address.lat: Input should be a finite number" in read.error


def _order_message(order_id: uuid.UUID, fields: bytes) -> bytes:
    return b'{"order_id": "%s", "items": [{"item_id": "sushi-set", "quantity": 1}], %s}' % (
        str(order_id).encode(),
        fields,
    )


def test_the_seed_order_is_still_accepted() -> None:
    assert isinstance(read_order(orjson.dumps(SEED_ORDER), "validated_orders", 0, 7), Accepted)


def test_text_with_nul_or_an_unpaired_surrogate_is_refused_everywhere() -> None:
    for bad in ("a\x00", "\ud800", "x\udfffy"):
        with pytest.raises(ValueError):
            storable_text(bad)
        with pytest.raises(ValidationError):
            ValidatedOrder.model_validate(SEED_ORDER | {"user_id": bad})
        with pytest.raises(ValidationError):
            PriceRequest.model_validate(
                {"items": [{"item_id": "a", "quantity": 1}], "order_id": bad}
            )
    assert storable_text("Crème brûlée 🍮") == "Crème brûlée 🍮"
