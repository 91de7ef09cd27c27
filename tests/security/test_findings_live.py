"""The issue's findings 1, 2, 4, 5 and 6 tried again against the running system, as an
attacker would (finding 3, the internal services, is `tests/e2e/test_internal_auth.py`)."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import jwt
import pytest

from foodflow.platform.config import Settings
from tests.e2e.conftest import system  # noqa: F401  (the running system, started once)

pytestmark = pytest.mark.e2e

PUBLISHED_CONSTANT = "development-only-secret-do-not-use-in-production"
PASSWORD = "violet staple orbit lantern"
ADDRESS = {"address": "Alexanderplatz 1, Berlin", "lat": 52.52, "lon": 13.41}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def gateway(system: Settings) -> httpx.AsyncClient:  # noqa: F811
    return httpx.AsyncClient(base_url=system.service_url(system.gateway_port), timeout=30)


async def customer(client: httpx.AsyncClient) -> dict[str, str]:
    email = f"live-{uuid.uuid4().hex[:12]}@example.com"
    signed_up = await client.post(
        "/users", json={"email": email, "name": "L", "password": PASSWORD}
    )
    assert signed_up.status_code == 202, signed_up.text
    login = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return bearer(login.json()["access_token"])


async def test_1_a_token_forged_with_the_published_constant_is_refused(
    gateway: httpx.AsyncClient,
) -> None:
    claims = {"sub": str(uuid.uuid4()), "role": "admin", "exp": int(time.time()) + 10**9}
    forged = bearer(jwt.encode(claims, PUBLISHED_CONSTANT, algorithm="HS256"))
    async with gateway as client:
        assert (await client.get("/users/me", headers=forged)).status_code == 401
        assert (await client.get("/dashboard/orders", headers=forged)).status_code == 401


async def test_2_the_dashboard_is_for_operators_only(gateway: httpx.AsyncClient) -> None:
    async with gateway as client:
        for path in ("/dashboard/orders", "/dashboard/couriers", "/dashboard/stock"):
            assert (await client.get(path)).status_code == 401, path
        order = {"user_id": "someone-else", "items": [{"item_id": "pho-bo", "quantity": 100}]}
        assert (await client.post("/dashboard/test-order", json=order)).status_code == 401
        headers = await customer(client)
        assert (await client.get("/dashboard/orders", headers=headers)).status_code == 403
        refused = await client.post("/dashboard/test-order", json=order, headers=headers)
        assert refused.status_code == 403


async def test_4_forwarded_for_does_not_make_a_new_client(gateway: httpx.AsyncClient) -> None:
    email = f"spray-{uuid.uuid4().hex[:12]}@example.com"
    async with gateway as client:
        answers = [
            await client.post(
                "/auth/login",
                json={"email": email, "password": f"wrong password {n}"},
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
            )
            for n in range(1, 8)
        ]
    # Five tries per account a minute, whatever address the client claims.
    assert [a.status_code for a in answers[:5]] == [401] * 5
    assert {a.status_code for a in answers[5:]} == {429}


async def test_4_sign_up_does_not_tell_which_emails_exist(gateway: httpx.AsyncClient) -> None:
    email = f"taken-{uuid.uuid4().hex[:12]}@example.com"
    body = {"email": email, "name": "T", "password": PASSWORD}
    async with gateway as client:
        first = await client.post("/users", json=body)
        again = await client.post("/users", json=body)
    assert (first.status_code, first.json()) == (again.status_code, again.json())
    assert email not in again.text


async def test_5_a_huge_body_is_refused_before_it_is_read(
    system: Settings,  # noqa: F811
    gateway: httpx.AsyncClient,
) -> None:
    # A raw connection: announce 10 MB, send the first 64 KiB, and read the answer; the
    # gateway answers (and closes) without waiting for the rest.
    reader, writer = await asyncio.open_connection("127.0.0.1", system.gateway_port)
    try:
        writer.write(
            b"POST /users HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000000\r\n\r\n" + b'{"email": "' + b"a" * 65_536
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=5)
    finally:
        writer.close()
    assert status_line.split()[1] == b"413", status_line
    async with gateway as client:
        assert (await client.get("/health")).status_code == 200


async def test_6_input_the_stores_cannot_hold_is_a_4xx(gateway: httpx.AsyncClient) -> None:
    async with gateway as client:
        headers = await customer(client)
        order = {"items": [{"item_id": "pho-bo", "quantity": 1}], "delivery_address": ADDRESS}
        nul = await client.post(
            "/orders", json={**order, "promo_code": "WELCOME\u0000"}, headers=headers
        )
        assert nul.status_code == 422, nul.text
        infinite = (
            b'{"items": [{"item_id": "pho-bo", "quantity": 1}], "delivery_address":'
            b' {"address": "Somewhere 1", "lat": 1e999, "lon": 13.4}}'
        )
        answer = await client.post(
            "/orders",
            content=infinite,
            headers={**headers, "content-type": "application/json"},
        )
        assert answer.status_code == 422, answer.text
        page = await client.get("/orders?offset=9223372036854775808", headers=headers)
        assert page.status_code == 422
        for weak in ("password", "12345678"):
            body = {"email": f"w-{uuid.uuid4().hex[:8]}@example.com", "name": "W", "password": weak}
            assert (await client.post("/users", json=body)).status_code == 422, weak
