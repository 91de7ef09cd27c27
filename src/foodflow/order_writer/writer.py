"""From raw `db_write_order_status` messages to rows in `orders`, `order_items`, history.

`parse_message` and `reduce_batch` are pure; `PostgresOrderStore` is the SQL adapter: one
transaction per batch, multi-row statements over `unnest` arrays, version-guarded upserts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
from pydantic import ValidationError

from foodflow.contracts.orders import OrderFinalEvent
from foodflow.platform.errors import ServiceUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rejected:
    """A message that cannot become an OrderFinalEvent, and why."""

    error: str
    order_id: UUID | None = None


def parse_message(value: bytes | None, key: bytes | None = None) -> OrderFinalEvent | Rejected:
    """Validate one message body as an OrderFinalEvent, or say why it is not one."""
    order_id = _uuid_or_none(key)
    if not value:
        return Rejected("empty message", order_id)
    try:
        return OrderFinalEvent.model_validate_json(value)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<body>'}: {err['msg']}"
            for err in exc.errors(include_url=False)[:10]
        )
        return Rejected(f"invalid OrderFinalEvent: {errors}", order_id)


def reduce_batch(events: Iterable[OrderFinalEvent]) -> list[OrderFinalEvent]:
    """Keep the highest version of each order (the first seen on a tie), sorted by order id.

    Sorting gives every writer the same lock order, so concurrent batches cannot deadlock.
    """
    newest: dict[UUID, OrderFinalEvent] = {}
    for event in events:
        current = newest.get(event.order_id)
        if current is None or event.version > current.version:
            newest[event.order_id] = event
    return [newest[order_id] for order_id in sorted(newest, key=lambda u: u.bytes)]


def _uuid_or_none(raw: bytes | None) -> UUID | None:
    if not raw:
        return None
    try:
        return UUID(raw.decode("ascii", errors="strict"))
    except (ValueError, UnicodeDecodeError):
        return None


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

# SQLSTATE classes worth retrying: connection (08), resources (53), operator intervention
# (57: shutdown, cancel), transaction rollback (40: deadlock, serialization).
TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "40")


def is_transient(exc: BaseException) -> bool:
    """True for errors that a retry can cure (PostgreSQL down, restarting, overloaded)."""
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", None) or ""
        return sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES
    return False


class PostgresOrderStore:
    """Writes reduced batches of final order events, retrying while PostgreSQL is unavailable.

    Transient failures are retried with exponential backoff and full jitter, capped at
    `max_backoff` seconds, for as long as it takes (dropping data is worse than waiting);
    `abort_retries()` (on shutdown) makes a retrying write raise ServiceUnavailable instead.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        base_backoff: float = 0.1,
        max_backoff: float = 10.0,
        statement_timeout: float = 30.0,
    ) -> None:
        self._pool = pool
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._timeout = statement_timeout
        self._abort = asyncio.Event()
        self.retries = 0

    def abort_retries(self) -> None:
        self._abort.set()

    async def ping(self) -> bool:
        try:
            async with self._pool.acquire(timeout=2.0) as conn:
                return bool(await conn.fetchval("SELECT 1", timeout=2.0) == 1)
        except Exception:
            return False

    async def write(self, events: Sequence[OrderFinalEvent]) -> WriteResult:
        """Write `events` (already reduced: one per order) in one transaction, retrying."""
        if not events:
            return WriteResult()
        attempt = 0
        while True:
            try:
                return await self._write_once(events)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                attempt += 1
                self.retries += 1
                if self._abort.is_set():
                    raise ServiceUnavailable(f"PostgreSQL unavailable: {exc!r}") from exc
                delay = random.uniform(0, min(self._max_backoff, self._base_backoff * 2**attempt))
                log.warning(
                    "Writing %d order(s) failed (%s); retry %d in %.2fs",
                    len(events),
                    exc.__class__.__name__,
                    attempt,
                    delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._abort.wait(), timeout=delay)

    async def _write_once(self, events: Sequence[OrderFinalEvent]) -> WriteResult:
        async with self._pool.acquire(timeout=self._timeout) as conn, conn.transaction():
            written_ids = {
                row["order_id"]
                for row in await conn.fetch(
                    UPSERT_ORDERS, *order_columns(events), timeout=self._timeout
                )
            }
            written = [e for e in events if e.order_id in written_ids]
            result = WriteResult(
                orders_written=written, stale=[e for e in events if e.order_id not in written_ids]
            )
            if written:
                await conn.execute(
                    DELETE_ITEMS, [e.order_id for e in written], timeout=self._timeout
                )
                status = await conn.execute(
                    INSERT_ITEMS, *item_columns(written), timeout=self._timeout
                )
                result.item_rows = _row_count(status)
            status = await conn.execute(
                INSERT_HISTORY, *history_columns(events), timeout=self._timeout
            )
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
