"""Read-only queries over `order_state` for the operations dashboard: recent orders and counts.

Both are bounded (a row limit, a statement timeout) and are run by one refresh task per gateway
process, never per viewer, so that watching the dashboard cannot load PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import asyncpg
from pydantic import ValidationError

from foodflow.contracts.orders import OrderSnapshot

log = logging.getLogger(__name__)

# Orders that changed since a moment, oldest change first. Those that left the saga are found
# through the partial index on updated_at; those still in it are few (the saga's in-flight).
_RECENT = """
SELECT snapshot FROM (
    (SELECT snapshot, updated_at FROM order_state
     WHERE NOT in_saga AND updated_at >= $1 ORDER BY updated_at DESC LIMIT $2)
    UNION ALL
    (SELECT snapshot, updated_at FROM order_state
     WHERE in_saga AND updated_at >= $1 ORDER BY updated_at DESC LIMIT $2)
) recent
ORDER BY updated_at DESC
LIMIT $2
"""

_COUNTS = "SELECT status, count(*) AS n FROM order_state GROUP BY status"


async def recent_snapshots(
    pool: asyncpg.Pool, since: datetime, limit: int, *, timeout: float = 10.0
) -> list[OrderSnapshot]:
    """The newest `limit` orders changed since `since`, as snapshots, oldest change first.
    A snapshot that does not read (should never happen) is skipped and logged."""
    rows = await pool.fetch(_RECENT, since, limit, timeout=timeout)
    # Tens of thousands of snapshots take a second or two to read: not on the event loop.
    return await asyncio.to_thread(_read_snapshots, [row["snapshot"] for row in reversed(rows)])


def _read_snapshots(texts: list[str]) -> list[OrderSnapshot]:
    out = []
    for text in texts:
        try:
            out.append(OrderSnapshot.model_validate_json(text))
        except ValidationError as exc:
            log.warning("Skipping an unreadable order snapshot: %s", exc)
    return out


async def counts_by_status(pool: asyncpg.Pool, *, timeout: float = 5.0) -> dict[str, int]:
    """How many stored orders are in each status (every order `order_state` retains)."""
    rows = await pool.fetch(_COUNTS, timeout=timeout)
    return {row["status"]: int(row["n"]) for row in rows}
