"""The customer's order API: place (idempotent), read, list, cancel; the courier's steps.

Prices come from the catalogue only: a price sent by the client is dropped before the order
is published. The gateway owns which user placed which order (`customer_orders`); the order's
state comes from Redis (live) or PostgreSQL (once the Redis key expired).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID, uuid4

import httpx
import orjson
from fastapi import APIRouter, Header, HTTPException, Query, status
from pydantic import BaseModel, Field

from foodflow.contracts import topics
from foodflow.contracts.orders import (
    MAX_ITEMS_PER_ORDER,
    MAX_QUANTITY,
    NOT_YET_RECEIVED,
    DeliveryAddress,
    ItemId,
    OrderItemIn,
    OrderSnapshot,
    OrderStatus,
    PricedItem,
    StatusChange,
    ValidatedOrder,
    order_status_key,
)
from foodflow.contracts.pricing import PriceBreakdown
from foodflow.gateway.auth import CurrentUser
from foodflow.gateway.deps import AppSettings, DbPool, Producer, RedisClient
from foodflow.gateway.security import Principal, Role
from foodflow.platform.config import Settings

log = logging.getLogger(__name__)
router = APIRouter(tags=["orders"])

CANCEL_WAIT_SECONDS = 5.0


class OrderLineIn(BaseModel):
    item_id: ItemId
    quantity: int = Field(ge=1, le=MAX_QUANTITY)
    price: Any = Field(default=None, description="Ignored: prices come from the catalogue.")


class OrderCreate(BaseModel):
    items: list[OrderLineIn] = Field(min_length=1, max_length=MAX_ITEMS_PER_ORDER)
    delivery_address: DeliveryAddress
    promo_code: str | None = Field(default=None, max_length=32)
    payment_token: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[A-Za-z0-9_]+$",
        description="Test card: tok_visa, tok_declined, tok_insufficient_funds, tok_timeout",
    )


class OrderAccepted(BaseModel):
    order_id: UUID
    status: str
    status_url: str


class OrderPublic(BaseModel):
    order_id: UUID
    user_id: str
    status: str
    reason: str | None = None
    detail: str | None = None
    price: PriceBreakdown | None = None
    items: list[PricedItem] = Field(default_factory=list)
    timeline: list[StatusChange] = Field(default_factory=list)
    delivery_address: DeliveryAddress | None = None
    created_at: datetime
    updated_at: datetime | None = None


class OrderPage(BaseModel):
    items: list[OrderPublic]
    total: int
    limit: int
    offset: int


def _request_hash(body: OrderCreate) -> str:
    canonical = body.model_dump(mode="json", exclude={"items": {"__all__": {"price"}}})
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


@router.post("/orders", response_model=OrderAccepted, status_code=status.HTTP_202_ACCEPTED)
async def place_order(
    body: OrderCreate,
    user: CurrentUser,
    pool: DbPool,
    redis: RedisClient,
    producer: Producer,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> OrderAccepted:
    """Place an order at catalogue prices; the same Idempotency-Key and body give the same order."""
    ids = [line.item_id for line in body.items]
    if len(ids) != len(set(ids)):
        raise HTTPException(422, "each item_id may appear only once per order")
    known = {
        r["item_id"]
        for r in await pool.fetch(
            "SELECT item_id FROM inventory_items WHERE item_id = ANY($1::text[])", ids
        )
    }
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise HTTPException(422, f"not on the menu: {', '.join(unknown)}")
    request_hash = _request_hash(body)
    order_id = uuid4()
    order = ValidatedOrder(
        order_id=order_id,
        user_id=str(user.user_id),
        items=[OrderItemIn(item_id=line.item_id, quantity=line.quantity) for line in body.items],
        promo_code=body.promo_code,
        payment_token=body.payment_token,
        delivery_address=body.delivery_address,
    )
    row = await pool.fetchrow(
        "INSERT INTO customer_orders (order_id, user_id, idempotency_key, request_hash, request)"
        " VALUES ($1, $2, $3, $4, $5::jsonb)"
        " ON CONFLICT (user_id, idempotency_key) DO NOTHING RETURNING order_id",
        order_id,
        user.user_id,
        idempotency_key,
        request_hash,
        order.model_dump_json(),
    )
    if row is None:  # this key placed an order before
        previous = await pool.fetchrow(
            "SELECT order_id, request_hash, request FROM customer_orders"
            " WHERE user_id = $1 AND idempotency_key = $2",
            user.user_id,
            idempotency_key,
        )
        assert previous is not None
        if previous["request_hash"] != request_hash:
            raise HTTPException(
                422, "this Idempotency-Key was used for a different order; use a new key"
            )
        order = ValidatedOrder.model_validate_json(previous["request"])
        order_id = previous["order_id"]
        if await redis.exists(order_status_key(order_id)):
            return _accepted(order_id, "ALREADY_PLACED")
        # Placed but perhaps never published (a crash in between): publishing again is safe,
        # the order manager drives one order id once.
    await producer.publish(topics.VALIDATED_ORDERS, order, key=str(order_id))
    log.info("Order %s placed by %s", order_id, user.user_id)
    return _accepted(order_id, NOT_YET_RECEIVED)


def _accepted(order_id: UUID, state: str) -> OrderAccepted:
    return OrderAccepted(order_id=order_id, status=state, status_url=f"/orders/{order_id}")


async def _owned(pool: DbPool, order_id: UUID, user: Principal) -> dict[str, Any]:
    """The order's row, if this user may see it; 404 otherwise (ids do not leak)."""
    row = await pool.fetchrow(
        "SELECT order_id, user_id, request, created_at FROM customer_orders WHERE order_id = $1",
        order_id,
    )
    if row is None or (row["user_id"] != user.user_id and not user.is_admin):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no order {order_id}")
    return dict(row)


async def _current(pool: DbPool, redis: RedisClient, placed: dict[str, Any]) -> OrderPublic:
    order_id = placed["order_id"]
    raw = await redis.get(order_status_key(order_id))
    if raw:
        snap = OrderSnapshot.model_validate_json(raw)
        return OrderPublic(**snap.model_dump(exclude={"history", "version"}), timeline=snap.history)
    row = await pool.fetchrow("SELECT * FROM orders WHERE order_id = $1", order_id)
    request = ValidatedOrder.model_validate_json(placed["request"])
    if row is None:  # not yet taken in by the order manager
        return OrderPublic(
            order_id=order_id,
            user_id=request.user_id,
            status=NOT_YET_RECEIVED,
            items=[PricedItem(item_id=i.item_id, quantity=i.quantity) for i in request.items],
            delivery_address=request.delivery_address,
            created_at=placed["created_at"],
        )
    items = await pool.fetch(
        "SELECT item_id, quantity, unit_price, line_total FROM order_items WHERE order_id = $1",
        order_id,
    )
    history = await pool.fetch(
        "SELECT version, status, reason, at FROM order_status_history WHERE order_id = $1"
        " ORDER BY version",
        order_id,
    )
    return OrderPublic(
        order_id=order_id,
        user_id=row["user_id"],
        status=row["status"],
        reason=row["reason"],
        detail=row["detail"],
        price=PriceBreakdown.model_validate_json(row["price_breakdown"])
        if row["price_breakdown"]
        else None,
        items=[PricedItem.model_validate(dict(i)) for i in items],
        timeline=[StatusChange.model_validate(dict(h)) for h in history],
        delivery_address=request.delivery_address,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


@router.get("/orders/{order_id}", response_model=OrderPublic)
async def read_order(
    order_id: UUID, user: CurrentUser, pool: DbPool, redis: RedisClient
) -> OrderPublic:
    """One order: status, price breakdown and timeline. Admins may read every order."""
    return await _current(pool, redis, await _owned(pool, order_id, user))


@router.get("/orders", response_model=OrderPage)
async def list_orders(
    user: CurrentUser,
    pool: DbPool,
    redis: RedisClient,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> OrderPage:
    """My orders, newest first, `limit` at a time."""
    total = await pool.fetchval(
        "SELECT count(*) FROM customer_orders WHERE user_id = $1", user.user_id
    )
    rows = await pool.fetch(
        "SELECT order_id, user_id, request, created_at FROM customer_orders WHERE user_id = $1"
        " ORDER BY created_at DESC LIMIT $2 OFFSET $3",
        user.user_id,
        limit,
        offset,
    )
    items = [await _current(pool, redis, dict(r)) for r in rows]
    return OrderPage(items=items, total=total, limit=limit, offset=offset)


async def _delivery_call(settings: Settings, path: str, body: dict[str, Any]) -> httpx.Response:
    try:
        async with httpx.AsyncClient(base_url=settings.delivery_url, timeout=10.0) as client:
            return await client.post(path, json=body)
    except httpx.HTTPError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"delivery service unavailable: {exc}"
        ) from None


def _relay(response: httpx.Response) -> None:
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        code = response.status_code if response.status_code < 500 else 503
        raise HTTPException(code, detail)


def _still_processing(state: str) -> bool:
    """Not yet received by the order manager, or still driven by its saga."""
    return state == NOT_YET_RECEIVED or OrderStatus(state).in_saga


@router.post("/orders/{order_id}/cancel", response_model=OrderPublic)
async def cancel_order(
    order_id: UUID, user: CurrentUser, pool: DbPool, redis: RedisClient, settings: AppSettings
) -> OrderPublic:
    """Cancel before pickup: payment refunded, stock and courier released; 409 afterwards."""
    placed = await _owned(pool, order_id, user)
    deadline = time.monotonic() + CANCEL_WAIT_SECONDS
    current = await _current(pool, redis, placed)
    # Payment takes a moment: wait for the order to leave the saga, then cancel.
    while _still_processing(current.status) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        current = await _current(pool, redis, placed)
    if _still_processing(current.status):
        raise HTTPException(409, "the order is still being processed; try again in a moment")
    state = OrderStatus(current.status)
    if state.aborted:
        raise HTTPException(409, f"the order is {current.status.lower()} already")
    if not state.cancellable:
        raise HTTPException(
            409,
            f"the order is {current.status.replace('_', ' ').lower()};"
            " it can no longer be cancelled",
        )
    _relay(await _delivery_call(settings, f"/deliveries/{order_id}/cancel", {}))
    return await _current(pool, redis, placed)


def _courier(user: Principal) -> None:
    if user.role not in (Role.COURIER, Role.ADMIN):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only couriers report delivery steps")


@router.post("/deliveries/{order_id}/pickup", response_model=OrderPublic, tags=["couriers"])
async def picked_up(
    order_id: UUID, user: CurrentUser, pool: DbPool, redis: RedisClient, settings: AppSettings
) -> OrderPublic:
    """Courier: the food is picked up at the restaurant."""
    _courier(user)
    _relay(await _delivery_call(settings, f"/deliveries/{order_id}/pickup", {}))
    return await _current(
        pool, redis, await _owned(pool, order_id, Principal(user.user_id, Role.ADMIN))
    )


@router.post("/deliveries/{order_id}/deliver", response_model=OrderPublic, tags=["couriers"])
async def delivered(
    order_id: UUID, user: CurrentUser, pool: DbPool, redis: RedisClient, settings: AppSettings
) -> OrderPublic:
    """Courier: the food is handed to the customer."""
    _courier(user)
    _relay(await _delivery_call(settings, f"/deliveries/{order_id}/deliver", {}))
    return await _current(
        pool, redis, await _owned(pool, order_id, Principal(user.user_id, Role.ADMIN))
    )
