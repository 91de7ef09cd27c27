"""The live operations dashboard: the page, its Server-Sent-Events stream and its JSON endpoints.

The page is public (it holds no data, only a login form); everything under /dashboard/ needs
an operator's or admin's bearer token. The page reads the stream with fetch(), which can send
the token in a header, unlike EventSource: no token ever travels in a URL (logs, history).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, Depends, status
from fastapi.responses import HTMLResponse, StreamingResponse

from foodflow.gateway import services
from foodflow.gateway.auth import staff_user
from foodflow.gateway.board import Board, BoardStats
from foodflow.gateway.deps import (
    Delivery,
    DemoCustomer,
    Inventory,
    OrderBoard,
    Orders,
    Publisher,
    Repository,
    Restaurants,
    Runtime,
)
from foodflow.gateway.feed import Broadcaster
from foodflow.gateway.ops import OpsRefresher, OpsReport
from foodflow.gateway.schemas import (
    BoardSnapshot,
    CourierBoard,
    OrderTimeline,
    StockReport,
    TestOrderAccepted,
    TestOrderRequest,
)

page_router = APIRouter(tags=["dashboard"])
router = APIRouter(prefix="/dashboard", tags=["dashboard"], dependencies=[Depends(staff_user)])

STATIC = files("foodflow.gateway") / "static"
BOARD_SIZE = 100
KEEPALIVE_SECONDS = 15.0
# Tells EventSource how soon to reconnect after a dropped stream.
RETRY_MILLISECONDS = 1000


def sse_event(name: str, data: Any) -> str:
    """One Server-Sent Event: `event:` line, one `data:` line of compact JSON, blank line."""
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def snapshot(board: Board, ops: OpsRefresher | None = None) -> BoardSnapshot:
    return BoardSnapshot(
        orders=board.recent(BOARD_SIZE),
        stats=board.stats(datetime.now(UTC)),
        ops=ops.report if ops is not None else None,
    )


@page_router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def dashboard_page() -> HTMLResponse:
    """The live dashboard page (plain HTML, CSS and JavaScript served from the package)."""
    return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))


async def _stream(
    broadcaster: Broadcaster, first: BoardSnapshot, closing: asyncio.Event
) -> AsyncIterator[str]:
    subscriber = broadcaster.subscribe()
    try:
        yield f"retry: {RETRY_MILLISECONDS}\n\n"
        yield sse_event("snapshot", first.model_dump(mode="json"))
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
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def dashboard_events(runtime: Runtime) -> StreamingResponse:
    """Server-Sent Events: a `snapshot`, then `order` per status change (test traffic left
    out), `stats` every 2 s and `ops` (lag, dead letters, health) every refresh."""
    return StreamingResponse(
        _stream(runtime.broadcaster, snapshot(runtime.board, runtime.ops), runtime.closing),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/orders", response_model=BoardSnapshot)
async def dashboard_orders(runtime: Runtime) -> BoardSnapshot:
    """The board as JSON: the most recently changed orders and the current figures."""
    return snapshot(runtime.board, runtime.ops)


@router.get("/stats", response_model=BoardStats)
async def dashboard_stats(board: OrderBoard) -> BoardStats:
    """Counts by status, throughput, and latency from publication to each status
    (p50/p90/p99 over the last 5 minutes, and per 10 s over the last 15 minutes)."""
    return board.stats(datetime.now(UTC))


@router.get("/ops", response_model=OpsReport)
async def dashboard_ops(runtime: Runtime) -> OpsReport:
    """Consumer lag per group, dead letters, and each service's readiness, restarts and
    event-loop lag, as last measured (every DASHBOARD_REFRESH_SECONDS; never on request)."""
    return runtime.ops.report


@router.get(
    "/orders/{order_id}",
    response_model=OrderTimeline,
    responses={404: {"description": "No such order in Redis, PostgreSQL or on the board"}},
)
async def order_timeline(order_id: uuid.UUID, orders: Orders, board: OrderBoard) -> OrderTimeline:
    """One order's timeline: live status from Redis, final row and history from PostgreSQL."""
    return await services.order_timeline(orders, board, order_id)


@router.get("/stock", response_model=StockReport)
async def dashboard_stock(inventory: Inventory) -> StockReport:
    """Stock per menu item, each flagged `low` below the low-stock threshold."""
    return await services.stock_report(inventory)


@router.get("/couriers", response_model=CourierBoard)
async def dashboard_couriers(delivery: Delivery) -> CourierBoard:
    """Couriers, free or with the order they carry, from the delivery service's `/couriers`."""
    return await services.courier_board(delivery)


@router.post(
    "/test-order",
    response_model=TestOrderAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        409: {"description": "The restaurant is closed, or an item is unavailable there"},
        422: {"description": "The order is not valid (e.g. an item twice)"},
    },
)
async def place_test_order(
    body: TestOrderRequest,
    repository: Repository,
    kitchens: Restaurants,
    publisher: Publisher,
    demo_customer: DemoCustomer,
) -> TestOrderAccepted:
    """Publish a test order of the demo customer's on `validated_orders` (202 with its id)."""
    return await services.place_test_order(repository, kitchens, publisher, demo_customer, body)
