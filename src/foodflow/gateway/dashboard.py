"""The live operations dashboard: the page, its Server-Sent-Events stream and its JSON endpoints."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from importlib.resources import files
from typing import Any

import httpx
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from foodflow.contracts import topics
from foodflow.contracts.delivery import CourierView
from foodflow.contracts.inventory import ItemId
from foodflow.contracts.orders import (
    MAX_QUANTITY,
    OrderItemIn,
    OrderStatusUpdate,
    PricedItem,
    StatusChange,
    UserId,
    ValidatedOrder,
    order_status_key,
)
from foodflow.gateway.board import BoardStats, OrderCard
from foodflow.gateway.deps import AppSettings, DbPool, OrderBoard, Producer, RedisClient, Runtime
from foodflow.gateway.feed import Broadcaster

log = logging.getLogger(__name__)

router = APIRouter(tags=["dashboard"])

STATIC = files("foodflow.gateway") / "static"
LOW_STOCK_THRESHOLD = 20
BOARD_SIZE = 100
KEEPALIVE_SECONDS = 15.0
COURIER_TIMEOUT_SECONDS = 2.0
# Tells EventSource how soon to reconnect after a dropped stream.
RETRY_MILLISECONDS = 1000


class StockLevel(BaseModel):
    item_id: str
    name: str
    stock: int
    low: bool


class StockReport(BaseModel):
    threshold: int
    items: list[StockLevel]


class CourierBoard(BaseModel):
    """Couriers and their assignments, as the delivery service reports them."""

    delivery_service: bool
    message: str
    couriers: list[CourierView] = Field(default_factory=list)


class BoardSnapshot(BaseModel):
    orders: list[OrderCard]
    stats: BoardStats


class StoredOrder(BaseModel):
    status: str
    reason: str | None
    detail: str | None
    version: int
    total: Decimal | None
    currency: str | None
    created_at: datetime
    updated_at: datetime


class OrderTimeline(BaseModel):
    """One order: its live status (Redis), its final row (PostgreSQL) and every transition."""

    order_id: uuid.UUID
    current: OrderStatusUpdate | None
    stored: StoredOrder | None
    items: list[PricedItem]
    history: list[StatusChange]


class TestOrderLine(BaseModel):
    item_id: ItemId
    quantity: int = Field(ge=1, le=MAX_QUANTITY)


class TestOrderRequest(BaseModel):
    user_id: UserId = "dashboard"
    items: list[TestOrderLine] = Field(min_length=1)
    promo_code: str | None = Field(default=None, max_length=32)


class TestOrderAccepted(BaseModel):
    order_id: uuid.UUID
    topic: str


def sse_event(name: str, data: Any) -> str:
    """One Server-Sent Event: `event:` line, one `data:` line of compact JSON, blank line."""
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def snapshot(board: OrderBoard) -> BoardSnapshot:
    return BoardSnapshot(orders=board.recent(BOARD_SIZE), stats=board.stats(datetime.now(UTC)))


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def dashboard_page() -> HTMLResponse:
    """The live dashboard page (plain HTML, CSS and JavaScript served from the package)."""
    return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))


async def _stream(
    request: Request, broadcaster: Broadcaster, first: BoardSnapshot
) -> AsyncIterator[str]:
    subscriber = broadcaster.subscribe()
    try:
        yield f"retry: {RETRY_MILLISECONDS}\n\n"
        yield sse_event("snapshot", first.model_dump(mode="json"))
        closing = request.app.state.closing
        while not closing.is_set():
            event = await subscriber.next(timeout=KEEPALIVE_SECONDS)
            if event is None:
                if subscriber.dropped.is_set():
                    return
                yield ": keep-alive\n\n"
                continue
            yield sse_event(*event)
    finally:
        broadcaster.unsubscribe(subscriber)


@router.get(
    "/dashboard/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def dashboard_events(request: Request, runtime: Runtime) -> StreamingResponse:
    """Server-Sent Events: a `snapshot`, then `order` per status change, `stats` every 2 s."""
    return StreamingResponse(
        _stream(request, runtime.broadcaster, snapshot(runtime.board)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/dashboard/orders", response_model=BoardSnapshot)
async def dashboard_orders(board: OrderBoard) -> BoardSnapshot:
    """The board as JSON: the most recently changed orders and the current figures."""
    return snapshot(board)


@router.get("/dashboard/stats", response_model=BoardStats)
async def dashboard_stats(board: OrderBoard) -> BoardStats:
    """Counts by status, orders per minute and end-to-end latency p50/p99 (last 5 minutes)."""
    return board.stats(datetime.now(UTC))


@router.get(
    "/dashboard/orders/{order_id}",
    response_model=OrderTimeline,
    responses={404: {"description": "No such order in Redis, PostgreSQL or on the board"}},
)
async def order_timeline(
    order_id: uuid.UUID, pool: DbPool, redis: RedisClient, board: OrderBoard
) -> OrderTimeline:
    """One order's timeline: live status from Redis, final row and history from PostgreSQL."""
    raw = await redis.get(order_status_key(order_id))
    current = OrderStatusUpdate.model_validate_json(raw) if raw else None
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT status, reason, detail, version, total, currency, created_at, updated_at"
            " FROM orders WHERE order_id = $1",
            order_id,
        )
        items = await conn.fetch(
            "SELECT item_id, quantity, unit_price, line_total FROM order_items"
            " WHERE order_id = $1 ORDER BY item_id",
            order_id,
        )
        history_rows = await conn.fetch(
            "SELECT version, status, reason, at FROM order_status_history"
            " WHERE order_id = $1 ORDER BY version",
            order_id,
        )
    card = board.get(order_id)
    if current is None and row is None and card is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no order {order_id}")
    history = [StatusChange(**dict(h)) for h in history_rows]
    if not history and card is not None:
        history = list(card.history)
    return OrderTimeline(
        order_id=order_id,
        current=current,
        stored=StoredOrder(**dict(row)) if row is not None else None,
        items=[PricedItem(**dict(i)) for i in items],
        history=history,
    )


@router.get("/dashboard/stock", response_model=StockReport)
async def dashboard_stock(pool: DbPool) -> StockReport:
    """Stock per menu item, each flagged `low` below the low-stock threshold."""
    rows = await pool.fetch("SELECT item_id, name, stock FROM inventory_items ORDER BY item_id")
    return StockReport(
        threshold=LOW_STOCK_THRESHOLD,
        items=[StockLevel(**dict(r), low=r["stock"] < LOW_STOCK_THRESHOLD) for r in rows],
    )


@router.get("/dashboard/couriers", response_model=CourierBoard)
async def dashboard_couriers(settings: AppSettings) -> CourierBoard:
    """Couriers, free or with the order they carry, from the delivery service's `/couriers`."""
    try:
        async with httpx.AsyncClient(timeout=COURIER_TIMEOUT_SECONDS) as client:
            response = await client.get(settings.delivery_url + "/couriers")
            response.raise_for_status()
        couriers = TypeAdapter(list[CourierView]).validate_python(response.json())
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("Couriers unavailable: %s", exc)
        return CourierBoard(delivery_service=False, message="delivery service not reachable")
    busy = sum(1 for c in couriers if c.current_order is not None)
    return CourierBoard(
        delivery_service=True,
        message=f"{len(couriers)} couriers, {busy} on a delivery",
        couriers=couriers,
    )


@router.post(
    "/dashboard/test-order",
    response_model=TestOrderAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses={422: {"description": "The order is not valid (e.g. an item twice)"}},
)
async def place_test_order(body: TestOrderRequest, producer: Producer) -> TestOrderAccepted:
    """Publish a test order on `validated_orders` under a new order id (202 with the id)."""
    try:
        order = ValidatedOrder(
            order_id=uuid.uuid4(),
            user_id=body.user_id,
            items=[
                OrderItemIn(item_id=line.item_id, quantity=line.quantity) for line in body.items
            ],
            promo_code=body.promo_code or None,
        )
    except ValidationError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [{"msg": e["msg"], "loc": e["loc"]} for e in exc.errors()],
        ) from None
    assert order.order_id is not None
    await producer.publish(topics.VALIDATED_ORDERS, order, key=str(order.order_id))
    log.info("Dashboard test order %s published for %s", order.order_id, body.user_id)
    return TestOrderAccepted(order_id=order.order_id, topic=topics.VALIDATED_ORDERS)
