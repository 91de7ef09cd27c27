"""Internal services authenticate their callers (finding 3: anyone could refund, charge, take
stock back or read addresses).

The token mechanics need no server; every internal route is then tried on its service's app
in-process, on the real PostgreSQL and Redis: no token, a bad token (garbage, forged, expired,
for another service) 401; a caller it does not admit 403; its callers get through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast
from uuid import uuid4

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI

from foodflow.delivery_service.app import DeliveryRuntime
from foodflow.delivery_service.app import create_app as create_delivery
from foodflow.delivery_service.repository import DeliveryRepository
from foodflow.delivery_service.services import DeliveryPorts
from foodflow.inventory_service.app import create_app as create_inventory
from foodflow.payment_service.app import create_app as create_payment
from foodflow.platform.config import Settings
from foodflow.platform.db.migrations import migrate_pool
from foodflow.platform.db.pool import create_pool
from foodflow.platform.db.redis import create_redis
from foodflow.platform.http.service_auth import (
    InvalidServiceToken,
    ServiceTokens,
    ServiceVerifier,
    allow,
)
from foodflow.pricing_service.app import create_app as create_pricing
from foodflow.restaurant_service.app import MIGRATIONS as RESTAURANT_MIGRATIONS
from foodflow.restaurant_service.app import RestaurantRuntime
from foodflow.restaurant_service.app import create_app as create_restaurant
from foodflow.restaurant_service.repository import KitchenRepository
from foodflow.restaurant_service.services import RestaurantPorts
from foodflow.tools import secrets as tool

from ..served import served
from ..service_auth import as_caller

SERVICES = tool.SERVICES


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tool.Secrets:
    settings = Settings(FOODFLOW_STATE_DIR=tmp_path_factory.mktemp("state"))
    tool.ensure_secrets(settings, report=lambda _: None)
    return tool.load_secrets(settings)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


# --- the tokens -------------------------------------------------------------------------------


def test_a_token_names_its_caller_for_its_audience_only(keys: tool.Secrets) -> None:
    tokens = ServiceTokens("order_manager", keys.service_keys["order_manager"])
    inventory = ServiceVerifier("inventory_service", keys.public_keys())
    assert inventory.caller_of(tokens.token_for("inventory_service")) == "order_manager"
    with pytest.raises(InvalidServiceToken, match="not meant for inventory_service"):
        inventory.caller_of(tokens.token_for("payment_service"))


def test_a_token_signed_with_another_key_is_refused(
    keys: tool.Secrets, caplog: pytest.LogCaptureFixture
) -> None:
    """A service that leaks its key cannot speak as another: the gateway's key signing as the
    order manager is refused. Which check failed is logged, not told to the caller."""
    impostor = ServiceTokens("order_manager", keys.service_keys["gateway"])
    verifier = ServiceVerifier("payment_service", keys.public_keys())
    with caplog.at_level(logging.INFO), pytest.raises(InvalidServiceToken) as refused:
        verifier.caller_of(impostor.token_for("payment_service"))
    assert str(refused.value) == "the token is not valid"
    assert any("Signature" in record.getMessage() for record in caplog.records)


def test_unknown_issuers_other_algorithms_and_long_lifetimes_are_refused(
    keys: tool.Secrets,
) -> None:
    verifier = ServiceVerifier("payment_service", keys.public_keys())
    now = int(time.time())
    claims = {"iss": "order_manager", "aud": "payment_service", "iat": now, "exp": now + 60}
    private = keys.service_keys["order_manager"]
    cases = {
        "not a known service": jwt.encode({**claims, "iss": "mallory"}, private, "EdDSA"),
        "not valid": jwt.encode(claims, "a shared secret of 32 characters!", "HS256"),
        "too long a lifetime": jwt.encode({**claims, "exp": now + 86400}, private, "EdDSA"),
    }
    for why, token in cases.items():
        with pytest.raises(InvalidServiceToken, match=why):
            verifier.caller_of(token)
    with pytest.raises(InvalidServiceToken):
        verifier.caller_of("garbage")


def test_tokens_are_reused_then_renewed_before_they_expire(keys: tool.Secrets) -> None:
    clock = Clock()
    tokens = ServiceTokens("order_manager", keys.service_keys["order_manager"], clock=clock)
    first = tokens.token_for("inventory_service")
    clock.now += 200
    assert tokens.token_for("inventory_service") == first
    clock.now += 60  # 40 s left: renewed
    assert tokens.token_for("inventory_service") != first


def test_a_remembered_token_is_refused_once_it_expires(keys: tool.Secrets) -> None:
    clock = Clock()
    tokens = ServiceTokens("order_manager", keys.service_keys["order_manager"], clock=clock)
    verifier = ServiceVerifier("inventory_service", keys.public_keys(), clock=clock)
    token = tokens.token_for("inventory_service")
    assert verifier.caller_of(token) == "order_manager"
    clock.now += 300 + 31
    with pytest.raises(InvalidServiceToken, match="expired"):
        verifier.caller_of(token)


def test_a_remembered_token_is_not_verified_again(
    keys: tool.Secrets, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch endpoints' hot path checks one signature per token, not one per request
    (timeit: ~370 µs a signature, ~0.3 µs a remembered token)."""
    token = ServiceTokens("order_manager", keys.service_keys["order_manager"]).token_for(
        "inventory_service"
    )
    verifier = ServiceVerifier("inventory_service", keys.public_keys())
    checks: list[str] = []
    verify = verifier._verify

    def counted(token: str, now: float) -> tuple[str, float]:
        checks.append(token)
        return verify(token, now)

    monkeypatch.setattr(verifier, "_verify", counted)
    assert {verifier.caller_of(token) for _ in range(1_000)} == {"order_manager"}
    assert checks == [token]


async def test_allow_answers_401_without_a_valid_token_and_403_to_others(
    keys: tool.Secrets,
) -> None:
    app = FastAPI()
    app.state.service_verifier = ServiceVerifier("inventory_service", keys.public_keys())

    @app.get("/reserve")
    async def reserve(caller: str = Depends(allow("order_manager"))) -> str:
        return caller

    def bearer(service: str) -> dict[str, str]:
        tokens = ServiceTokens(service, keys.service_keys[service])
        return {"authorization": tokens.authorization("inventory_service")}

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        assert (await client.get("/reserve")).status_code == 401
        assert (
            await client.get("/reserve", headers={"authorization": "Basic eA=="})
        ).status_code == 401
        assert (await client.get("/reserve", headers=bearer("gateway"))).status_code == 403
        answer = await client.get("/reserve", headers=bearer("order_manager"))
        assert answer.status_code == 200 and answer.json() == "order_manager"


def test_allow_refuses_names_that_are_not_services() -> None:
    with pytest.raises(ValueError, match="ordermanager"):
        allow("ordermanager")


# --- every internal route, on its service ---------------------------------------------------


def _order() -> str:
    return str(uuid4())


def _unknown_stock() -> list[dict[str, Any]]:
    # An item nobody sells: the request goes through and takes no stock.
    return [{"item_id": f"test-{uuid4().hex[:8]}", "quantity": 1}]


def _payment(name: str) -> dict[str, Any]:
    order = _order()
    return {"order_id": order, "idempotency_key": f"{order}:{name}"}


@dataclass(frozen=True)
class Route:
    service: str
    method: str
    path: str
    body: Callable[[], Any] | None
    callers: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.service} {self.method} {self.path}"


ROUTES = [
    Route(
        "inventory_service",
        "POST",
        "/check_inventory",
        lambda: {"items": _unknown_stock()},
        ("order_manager",),
    ),
    Route(
        "inventory_service",
        "POST",
        "/reserve",
        lambda: {"order_id": _order(), "items": _unknown_stock()},
        ("order_manager",),
    ),
    Route(
        "inventory_service", "POST", "/commit", lambda: {"order_id": _order()}, ("order_manager",)
    ),
    Route(
        "inventory_service", "POST", "/release", lambda: {"order_id": _order()}, ("order_manager",)
    ),
    Route(
        "inventory_service",
        "POST",
        "/reserve_batch",
        lambda: {"items": [{"order_id": _order(), "items": _unknown_stock()}]},
        ("order_manager",),
    ),
    Route(
        "inventory_service",
        "POST",
        "/commit_batch",
        lambda: {"items": [{"order_id": _order()}]},
        ("order_manager",),
    ),
    Route(
        "inventory_service",
        "POST",
        "/release_batch",
        lambda: {"items": [{"order_id": _order()}]},
        ("order_manager",),
    ),
    Route(
        "inventory_service",
        "POST",
        "/cancel",
        lambda: {"order_id": _order()},
        ("delivery_service", "order_manager"),
    ),
    Route("inventory_service", "GET", "/menu", None, ("gateway",)),
    Route("inventory_service", "GET", "/catalogue", None, ("pricing_service",)),
    Route(
        "inventory_service",
        "PUT",
        "/items/{item_id}/availability",
        lambda: {"available": False},
        ("restaurant_service",),
    ),
    Route(
        "pricing_service",
        "POST",
        "/calculate_price",
        lambda: {"items": [{"item_id": "sushi-set", "quantity": 1}]},
        ("order_manager",),
    ),
    Route(
        "pricing_service",
        "POST",
        "/calculate_price_batch",
        lambda: {"items": [{"items": [{"item_id": "sushi-set", "quantity": 1}]}]},
        ("order_manager",),
    ),
    Route(
        "payment_service",
        "POST",
        "/authorise",
        lambda: {
            **_payment("authorise"),
            "amount_cents": 100,
            "card_token": "tok_visa",
            "capture": True,
        },
        ("order_manager",),
    ),
    Route(
        "payment_service",
        "POST",
        "/authorise_batch",
        lambda: {
            "items": [{**_payment("authorise"), "amount_cents": 100, "card_token": "tok_visa"}]
        },
        ("order_manager",),
    ),
    Route("payment_service", "POST", "/capture", lambda: _payment("capture"), ("order_manager",)),
    Route(
        "payment_service",
        "POST",
        "/capture_batch",
        lambda: {"items": [_payment("capture")]},
        ("order_manager",),
    ),
    Route(
        "payment_service",
        "POST",
        "/void",
        lambda: _payment("void"),
        ("order_manager", "delivery_service"),
    ),
    Route(
        "payment_service",
        "POST",
        "/refund",
        lambda: _payment("refund"),
        ("order_manager", "delivery_service"),
    ),
    Route("payment_service", "GET", "/payments/{order_id}", None, ("delivery_service", "gateway")),
    Route("delivery_service", "GET", "/deliveries/{order_id}", None, ("gateway",)),
    Route(
        "delivery_service",
        "POST",
        "/deliveries/{order_id}/arrive",
        lambda: {"courier_id": "1"},
        ("gateway",),
    ),
    Route(
        "delivery_service",
        "POST",
        "/deliveries/{order_id}/pickup",
        lambda: {"courier_id": "1"},
        ("gateway",),
    ),
    Route(
        "delivery_service",
        "POST",
        "/deliveries/{order_id}/deliver",
        lambda: {"courier_id": "1"},
        ("gateway",),
    ),
    Route(
        "delivery_service",
        "POST",
        "/deliveries/{order_id}/cancel",
        lambda: {"reason": "CUSTOMER_CANCELLED"},
        ("gateway",),
    ),
    Route("delivery_service", "GET", "/couriers", None, ("gateway",)),
    Route("delivery_service", "GET", "/couriers/{courier_id}", None, ("gateway",)),
    Route("restaurant_service", "GET", "/restaurants", None, ("gateway",)),
    Route("restaurant_service", "GET", "/restaurants/{restaurant_id}", None, ("gateway",)),
    Route(
        "restaurant_service",
        "POST",
        "/check_order",
        lambda: {"item_ids": ["ramen"]},
        ("gateway", "order_manager"),
    ),
    Route("restaurant_service", "GET", "/restaurants/{restaurant_id}/tickets", None, ("gateway",)),
    Route(
        "restaurant_service",
        "GET",
        "/restaurants/{restaurant_id}/tickets/{order_id}",
        None,
        ("gateway",),
    ),
    *(
        Route(
            "restaurant_service",
            "POST",
            f"/restaurants/{{restaurant_id}}/tickets/{{order_id}}/{step}",
            body,
            ("gateway",),
        )
        for step, body in (
            ("accept", lambda: {"ready_in_minutes": 10}),
            ("prepare", None),
            ("delay", lambda: {"ready_in_minutes": 10}),
            ("ready", None),
            ("reject", lambda: {"reason": "KITCHEN_BUSY"}),
        )
    ),
    Route(
        "restaurant_service",
        "PUT",
        "/restaurants/{restaurant_id}/items/{item_id}/availability",
        lambda: {"available": True},
        ("gateway",),
    ),
    Route("restaurant_service", "PUT", "/restaurants/{restaurant_id}/opening", dict, ("gateway",)),
]
# What each route answers its own caller here (random ids: most are not found; a path not
# listed is a delivery step or read of an unknown order, 404).
WORKS = {
    "/check_inventory": 200,
    "/reserve": 200,
    "/commit": 404,
    "/release": 404,
    "/reserve_batch": 200,
    "/commit_batch": 200,
    "/release_batch": 200,
    "/cancel": 404,
    "/menu": 200,
    "/catalogue": 200,
    "/calculate_price": 200,
    "/calculate_price_batch": 200,
    "/authorise": 200,
    "/authorise_batch": 200,
    "/capture": 404,
    "/capture_batch": 200,
    "/void": 200,
    "/refund": 404,
    "/couriers": 200,
    "/restaurants": 200,
    "/restaurants/{restaurant_id}": 200,
    "/check_order": 200,
    "/restaurants/{restaurant_id}/tickets": 200,
    "/restaurants/{restaurant_id}/opening": 200,
}


@contextlib.asynccontextmanager
async def _running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client,
    ):
        yield client


async def _forever() -> None:
    await asyncio.Event().wait()


class NoOrderStatus:
    """Order statuses where no order has one (the orders tried here are made up)."""

    async def snapshot(self, order_id: object) -> None:
        return None


@contextlib.asynccontextmanager
async def _delivery(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The delivery app with its routes' runtime on the real PostgreSQL and Redis, but no
    consumer: it must not join the running system's consumer group."""
    app = create_delivery(tool.load_settings(settings, "delivery_service"))
    pool = await create_pool(settings, min_size=1, max_size=2)
    redis = create_redis(settings)
    idle = [asyncio.create_task(_forever()) for _ in range(2)]
    unused = cast(Any, None)  # the routes tried here (unknown orders) never reach these ports
    statuses = cast(Any, NoOrderStatus())
    ports = DeliveryPorts(DeliveryRepository(pool), statuses, unused, unused, 600.0, 20.0, 30.0)
    app.state.runtime = DeliveryRuntime(pool, redis, ports, idle[0], idle[1])
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://svc"
        ) as client:
            yield client
    finally:
        for task in idle:
            task.cancel()
        await redis.aclose()
        await pool.close()


@contextlib.asynccontextmanager
async def _restaurant(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The restaurant app with its routes' runtime on the real PostgreSQL, but no consumer
    (the running system's group is not to be joined) and no sweeper."""
    app = create_restaurant(tool.load_settings(settings, "restaurant_service"))
    pool = await create_pool(settings, min_size=1, max_size=2)
    await migrate_pool(pool, "restaurant_service", RESTAURANT_MIGRATIONS)
    idle = [asyncio.create_task(_forever()) for _ in range(2)]
    unused = cast(Any, None)  # the routes tried here (unknown orders) never reach these ports
    ports = RestaurantPorts(KitchenRepository(pool), unused, unused, 180.0)
    app.state.runtime = RestaurantRuntime(pool, ports, idle[0], idle[1])
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://svc"
        ) as client:
            yield client
    finally:
        for task in idle:
            task.cancel()
        await pool.close()


@pytest.fixture(scope="module")
def inventory_url(settings: Settings) -> Iterator[str]:
    with served(create_inventory(settings), "inventory") as url:
        yield url


@pytest.fixture(scope="module")
async def services(
    settings: Settings, inventory_url: str
) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    pricing = tool.load_settings(settings, "pricing_service").model_copy(
        update={"inventory_url_override": inventory_url}
    )
    # An instance number of its own: its consumer joins the payment group with static
    # membership, and one with the id of another live member (a payment service left running,
    # another test's) would fence it and be fenced back, over and over.
    fast = settings.model_copy(update={"payment_delay_seconds": 0.0, "instance": 41})
    async with (
        _running(create_inventory(settings)) as inventory,
        _running(create_pricing(pricing)) as pricing_client,
        _running(create_payment(fast)) as payment,
        _delivery(settings) as delivery,
        _restaurant(settings) as restaurant,
    ):
        yield {
            "inventory_service": inventory,
            "pricing_service": pricing_client,
            "payment_service": payment,
            "delivery_service": delivery,
            "restaurant_service": restaurant,
        }


async def call_route(
    client: httpx.AsyncClient, route: Route, headers: dict[str, str] | None
) -> httpx.Response:
    body = route.body() if route.body else None
    path = route.path.format(
        order_id=uuid4(),
        courier_id=f"test-{uuid4().hex[:8]}",
        restaurant_id="tokyo-kitchen",
        item_id=f"test-{uuid4().hex[:8]}",
    )
    return await client.request(route.method, path, json=body, headers=headers)


def _token(settings: Settings, caller: str, audience: str, **claims: Any) -> dict[str, str]:
    now = int(time.time())
    payload = {"iss": caller, "aud": audience, "iat": now, "exp": now + 300, **claims}
    found = tool.load_secrets(settings)
    token = jwt.encode(payload, found.service_keys[caller], algorithm="EdDSA")
    return {"authorization": f"Bearer {token}"}


@pytest.mark.integration
@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_an_internal_route_admits_only_its_callers(
    route: Route, services: dict[str, httpx.AsyncClient], settings: Settings
) -> None:
    client = services[route.service]
    caller = route.callers[0]
    outsider = next(s for s in ("gateway", "order_writer") if s not in route.callers)
    wrong_audience = next(s for s in SERVICES if s != route.service)
    # Signed as the caller with a key that is not the caller's.
    forged = ServiceTokens(caller, tool.new_private_key()).authorization(route.service)
    refused = {
        "no token": None,
        "garbage": {"authorization": "Bearer not-a-token"},
        "forged": {"authorization": forged},
        "expired": _token(
            settings, caller, route.service, iat=int(time.time()) - 700, exp=int(time.time()) - 400
        ),
        "other audience": _token(settings, caller, wrong_audience),
    }
    for why, headers in refused.items():
        response = await call_route(client, route, headers)
        assert response.status_code == 401, (why, response.text)
    denied = await call_route(client, route, as_caller(settings, outsider, route.service))
    assert denied.status_code == 403, denied.text
    for allowed in route.callers:
        answer = await call_route(client, route, as_caller(settings, allowed, route.service))
        assert answer.status_code == WORKS.get(route.path, 404), (allowed, answer.text)


@pytest.mark.integration
async def test_without_a_token_nobody_refunds_charges_or_takes_stock(
    services: dict[str, httpx.AsyncClient], settings: Settings
) -> None:
    """The issue's reproductions: each was answered 200 without any credential."""
    payment, inventory = services["payment_service"], services["inventory_service"]
    order = _order()
    authorise = {
        "order_id": order,
        "idempotency_key": f"{order}:a",
        "amount_cents": 10_000_000,
        "card_token": "tok_visa",
        "capture": True,
    }
    assert (await payment.post("/authorise", json=authorise)).status_code == 401
    assert (await payment.post("/refund", json=_payment("refund"))).status_code == 401
    assert (await inventory.post("/cancel", json={"order_id": order})).status_code == 401
    drain = {
        "items": [
            {"order_id": _order(), "items": [{"item_id": "sushi-set", "quantity": 100}]}
            for _ in range(10)
        ]
    }
    assert (await inventory.post("/reserve_batch", json=drain)).status_code == 401
    assert (await services["delivery_service"].get(f"/deliveries/{order}")).status_code == 401
    # The gateway, a real caller of the payment service, still may not charge or refund.
    gateway = as_caller(settings, "gateway", "payment_service")
    assert (await payment.post("/authorise", json=authorise, headers=gateway)).status_code == 403
    assert (
        await payment.post("/refund", json=_payment("refund"), headers=gateway)
    ).status_code == 403


def test_every_internal_route_is_in_the_table() -> None:
    """A route added later without a line here (and so without a test of who may call it)
    fails this test."""
    known = {(r.service, r.method, r.path) for r in ROUTES}
    open_paths = {"/health", "/ready", "/metrics"}
    apps = {
        "inventory_service": create_inventory(Settings()),
        "pricing_service": create_pricing(Settings()),
        "payment_service": create_payment(Settings()),
        "delivery_service": create_delivery(Settings()),
        "restaurant_service": create_restaurant(Settings()),
    }
    published = {
        (service, method.upper(), path)
        for service, app in apps.items()
        for path, operations in app.openapi()["paths"].items()
        if path not in open_paths
        for method in operations
    }
    assert published == known
