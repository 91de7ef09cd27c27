"""Every SQL statement on `orders`, `order_items` and `order_status_history`.

The order writer keeps the tables with `write_final_orders`: one transaction per batch,
multi-row statements over `unnest` arrays, version-guarded upserts. Everyone else reads an
order with `read_order`. The schema is `migrations/`, applied with `migrate_orders`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import asyncpg

from foodflow.contracts.orders import OrderFinalEvent, PricedItem, StatusChange
from foodflow.contracts.pricing import PriceBreakdown
from foodflow.platform.db.migrations import migrate_pool

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATIONS_OWNER = "orders"


async def migrate_orders(pool: asyncpg.Pool) -> list[str]:
    """Create or bring up to date the order tables (safe from several processes at once)."""
    return await migrate_pool(pool, MIGRATIONS_OWNER, MIGRATIONS)


# --- writing ------------------------------------------------------------------------------------


@dataclass
class WriteResult:
    """What one batch changed: orders upserted (new or newer), item and history rows inserted."""

    orders_written: list[OrderFinalEvent] = field(default_factory=list)
    stale: list[OrderFinalEvent] = field(default_factory=list)
    item_rows: int = 0
    history_rows: int = 0


UPSERT_ORDERS = """
INSERT INTO orders (
    order_id, user_id, status, reason, detail, version,
    subtotal, discount, delivery_fee, small_order_fee, tax, total, currency, promo_code,
    price_breakdown, created_at, updated_at
)
SELECT * FROM unnest(
    $1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[],
    $7::numeric[], $8::numeric[], $9::numeric[], $10::numeric[], $11::numeric[], $12::numeric[],
    $13::text[], $14::text[], $15::jsonb[], $16::timestamptz[], $17::timestamptz[]
)
ON CONFLICT (order_id) DO UPDATE SET
    user_id = EXCLUDED.user_id,
    status = EXCLUDED.status,
    reason = EXCLUDED.reason,
    detail = EXCLUDED.detail,
    version = EXCLUDED.version,
    subtotal = EXCLUDED.subtotal,
    discount = EXCLUDED.discount,
    delivery_fee = EXCLUDED.delivery_fee,
    small_order_fee = EXCLUDED.small_order_fee,
    tax = EXCLUDED.tax,
    total = EXCLUDED.total,
    currency = EXCLUDED.currency,
    promo_code = EXCLUDED.promo_code,
    price_breakdown = EXCLUDED.price_breakdown,
    created_at = EXCLUDED.created_at,
    updated_at = EXCLUDED.updated_at
WHERE orders.version < EXCLUDED.version
RETURNING order_id
"""

# Items follow the order's newest version exactly: replaced only for orders the upsert changed.
DELETE_ITEMS = "DELETE FROM order_items WHERE order_id = ANY($1::uuid[])"

INSERT_ITEMS = """
INSERT INTO order_items (order_id, item_id, quantity, unit_price, line_total)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::numeric[], $5::numeric[])
ON CONFLICT (order_id, item_id) DO NOTHING
"""

INSERT_HISTORY = """
INSERT INTO order_status_history (order_id, version, status, reason, at)
SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::timestamptz[])
ON CONFLICT (order_id, version) DO NOTHING
"""


async def write_final_orders(
    pool: asyncpg.Pool, events: Sequence[OrderFinalEvent], *, timeout: float = 30.0
) -> WriteResult:
    """Write `events` (one per order, sorted by order id) in one transaction, without retrying.

    An order is written only when its version is newer than the stored one; its items are then
    replaced, and history rows are added whatever the version (they never change).
    """
    if not events:
        return WriteResult()
    async with pool.acquire(timeout=timeout) as conn, conn.transaction():
        written_ids = {
            row["order_id"]
            for row in await conn.fetch(UPSERT_ORDERS, *order_columns(events), timeout=timeout)
        }
        written = [e for e in events if e.order_id in written_ids]
        result = WriteResult(
            orders_written=written, stale=[e for e in events if e.order_id not in written_ids]
        )
        if written:
            await conn.execute(DELETE_ITEMS, [e.order_id for e in written], timeout=timeout)
            status = await conn.execute(INSERT_ITEMS, *item_columns(written), timeout=timeout)
            result.item_rows = _row_count(status)
        status = await conn.execute(INSERT_HISTORY, *history_columns(events), timeout=timeout)
        result.history_rows = _row_count(status)
        return result


def order_columns(events: Sequence[OrderFinalEvent]) -> list[list[object]]:
    """One array per `orders` column, in UPSERT_ORDERS parameter order."""
    columns: list[list[object]] = [[] for _ in range(17)]
    for e in events:
        price = e.price
        row: tuple[object, ...] = (
            e.order_id,
            e.user_id,
            e.status.value,
            e.reason.value if e.reason else None,
            e.detail,
            e.version,
            *(
                (
                    price.subtotal,
                    price.discount,
                    price.delivery_fee,
                    price.small_order_fee,
                    price.tax,
                    price.total,
                    price.currency,
                    price.promo_code,
                    price.model_dump_json(),
                )
                if price is not None
                else (None,) * 9
            ),
            e.created_at,
            e.updated_at,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def item_columns(events: Sequence[OrderFinalEvent]) -> list[list[object]]:
    order_ids: list[object] = []
    item_ids: list[object] = []
    quantities: list[object] = []
    unit_prices: list[object] = []
    line_totals: list[object] = []
    for e in events:
        for item in e.items:
            order_ids.append(e.order_id)
            item_ids.append(item.item_id)
            quantities.append(item.quantity)
            unit_prices.append(item.unit_price)
            line_totals.append(item.line_total)
    return [order_ids, item_ids, quantities, unit_prices, line_totals]


def history_columns(events: Sequence[OrderFinalEvent]) -> list[list[object]]:
    order_ids: list[object] = []
    versions: list[object] = []
    statuses: list[object] = []
    reasons: list[object] = []
    ats: list[object] = []
    for e in events:
        for change in e.history:
            order_ids.append(e.order_id)
            versions.append(change.version)
            statuses.append(change.status.value)
            reasons.append(change.reason.value if change.reason else None)
            ats.append(change.at)
    return [order_ids, versions, statuses, reasons, ats]


def _row_count(status: str) -> int:
    # asyncpg returns the command tag, e.g. "INSERT 0 3".
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:
        return 0


# --- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderRecord:
    """An order as PostgreSQL keeps it: its row, its items by item id, its history by version."""

    order_id: UUID
    user_id: str
    status: str
    reason: str | None
    detail: str | None
    version: int
    subtotal: Decimal | None
    discount: Decimal | None
    delivery_fee: Decimal | None
    small_order_fee: Decimal | None
    tax: Decimal | None
    total: Decimal | None
    currency: str | None
    promo_code: str | None
    price: PriceBreakdown | None
    created_at: datetime
    updated_at: datetime
    items: list[PricedItem]
    history: list[StatusChange]


SELECT_ORDER = """
SELECT order_id, user_id, status, reason, detail, version, subtotal, discount, delivery_fee,
       small_order_fee, tax, total, currency, promo_code, price_breakdown, created_at, updated_at
FROM orders WHERE order_id = $1
"""
SELECT_ITEMS = (
    "SELECT item_id, quantity, unit_price, line_total FROM order_items"
    " WHERE order_id = $1 ORDER BY item_id"
)
SELECT_HISTORY = (
    "SELECT version, status, reason, at FROM order_status_history"
    " WHERE order_id = $1 ORDER BY version"
)


async def read_order(db: asyncpg.Pool | asyncpg.Connection, order_id: UUID) -> OrderRecord | None:
    """The stored order with its items and history, or None when the writer has not got it."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            return await read_order(conn, order_id)
    row = await db.fetchrow(SELECT_ORDER, order_id)
    if row is None:
        return None
    items = await db.fetch(SELECT_ITEMS, order_id)
    history = await db.fetch(SELECT_HISTORY, order_id)
    columns = dict(row)
    breakdown = columns.pop("price_breakdown")
    return OrderRecord(
        **columns,
        price=PriceBreakdown.model_validate_json(breakdown) if breakdown else None,
        items=[PricedItem.model_validate(dict(i)) for i in items],
        history=[StatusChange.model_validate(dict(h)) for h in history],
    )


async def stored_statuses(
    db: asyncpg.Pool | asyncpg.Connection, order_ids: Sequence[UUID | str]
) -> dict[str, str]:
    """The stored status of each of `order_ids` that has a row, by order id (as text)."""
    rows = await db.fetch(
        "SELECT order_id::text AS id, status FROM orders WHERE order_id = ANY($1::uuid[])",
        list(order_ids),
    )
    return {row["id"]: row["status"] for row in rows}


async def create_scratch_tables(connection: asyncpg.Connection, schema: str) -> None:
    """Empty copies of the three order tables in `schema` (made anew), for measuring writes."""
    await connection.execute(
        f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};"
        f"CREATE TABLE {schema}.orders (LIKE public.orders INCLUDING ALL);"
        f"CREATE TABLE {schema}.order_items (LIKE public.order_items INCLUDING ALL);"
        f"CREATE TABLE {schema}.order_status_history"
        " (LIKE public.order_status_history INCLUDING ALL);"
    )
