"""The customer's order API: place (idempotent), read, list, cancel; the courier's steps.

Prices come from the catalogue only: a price sent by the client is dropped before the order
is published. The gateway owns which user placed which order (`customer_orders`); the order's
state comes from Redis (live) or PostgreSQL (once the Redis key expired).
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, status

from foodflow.contracts.text import MAX_PAGE_OFFSET
from foodflow.gateway import services
from foodflow.gateway.auth import CurrentUser
from foodflow.gateway.deps import (
    Delivery,
    Inventory,
    Orders,
    Publisher,
    Repository,
    Restaurants,
)
from foodflow.gateway.schemas import OrderAccepted, OrderCreate, OrderPage, OrderPublic

router = APIRouter(tags=["orders"])


@router.post(
    "/orders",
    response_model=OrderAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        409: {"description": "The restaurant is closed, or an item is unavailable there"},
        422: {"description": "An item is not on the menu, or twice in the order"},
        503: {"description": "The restaurant service cannot say whether it is open"},
    },
)
async def place_order(
    body: OrderCreate,
    user: CurrentUser,
    repository: Repository,
    inventory: Inventory,
    kitchens: Restaurants,
    orders: Orders,
    publisher: Publisher,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> OrderAccepted:
    """Place an order at catalogue prices; the same Idempotency-Key and body give the same order."""
    return await services.place_order(
        repository, inventory, kitchens, orders, publisher, user, body, idempotency_key
    )


@router.get("/orders/{order_id}", response_model=OrderPublic)
async def read_order(
    order_id: UUID, user: CurrentUser, repository: Repository, orders: Orders
) -> OrderPublic:
    """One order: status, price breakdown and timeline. Admins may read every order."""
    return await services.read_order(repository, orders, order_id, user)


@router.get("/orders", response_model=OrderPage)
async def list_orders(
    user: CurrentUser,
    repository: Repository,
    orders: Orders,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_PAGE_OFFSET)] = 0,
) -> OrderPage:
    """My orders, newest first, `limit` at a time."""
    return await services.list_orders(repository, orders, user, limit, offset)


@router.post("/orders/{order_id}/cancel", response_model=OrderPublic)
async def cancel_order(
    order_id: UUID, user: CurrentUser, repository: Repository, orders: Orders, delivery: Delivery
) -> OrderPublic:
    """Cancel before pickup: payment refunded, stock and courier released; 409 afterwards."""
    return await services.cancel_order(repository, orders, delivery, order_id, user)


@router.post("/deliveries/{order_id}/arrive", response_model=OrderPublic, tags=["couriers"])
async def arrived(
    order_id: UUID, user: CurrentUser, repository: Repository, orders: Orders, delivery: Delivery
) -> OrderPublic:
    """Courier: I am at the restaurant, waiting for the food if it is not ready (only the
    courier carrying the order, or staff)."""
    return await services.arrive(repository, repository, orders, delivery, order_id, user)


@router.post("/deliveries/{order_id}/pickup", response_model=OrderPublic, tags=["couriers"])
async def picked_up(
    order_id: UUID, user: CurrentUser, repository: Repository, orders: Orders, delivery: Delivery
) -> OrderPublic:
    """Courier: the food is picked up at the restaurant (only the courier carrying the order,
    or staff)."""
    return await services.pick_up(repository, repository, orders, delivery, order_id, user)


@router.post("/deliveries/{order_id}/deliver", response_model=OrderPublic, tags=["couriers"])
async def delivered(
    order_id: UUID, user: CurrentUser, repository: Repository, orders: Orders, delivery: Delivery
) -> OrderPublic:
    """Courier: the food is handed to the customer (only the courier carrying the order, or
    staff)."""
    return await services.deliver(repository, repository, orders, delivery, order_id, user)
