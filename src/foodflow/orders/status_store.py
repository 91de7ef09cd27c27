"""Each order's current state: its truth in PostgreSQL (`order_state`), a copy in Redis.

PostgreSQL holds, per order, the whole snapshot (status, version, history, price), the original
request while the saga drives the order, and a sweeper's lease. Every transition is written
there first, behind a version guard: a version is stored once, with one status, whoever writes
it (a saga, a sweeper, a second instance, the delivery service). Only then is the snapshot
copied to Redis under `order_status:<order_id>` (with a TTL, as the seed's design has it), for
those who only look (the gateway, the command line). Redis may be flushed, restarted or down at
any moment: nothing decides from it, a reader that misses it reads PostgreSQL and fills it again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import TypeVar
from uuid import UUID

import asyncpg
import orjson
import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from foodflow.contracts.orders import (
    OrderSnapshot,
    OrderStatusUpdate,
    ValidatedOrder,
    order_status_key,
)
from foodflow.platform.db.pool import DATABASE_UNAVAILABLE_ERRORS
from foodflow.platform.errors import ServiceUnavailable
from foodflow.platform.http.batching import Coalescer
from foodflow.platform.retry import retry_async

log = logging.getLogger(__name__)
T = TypeVar("T")

# What PostgreSQL going away looks like from here; asyncpg raises InternalClientError ("another
# operation is in progress") for a connection a fast shutdown left mid-query.
DB_ERRORS: tuple[type[BaseException], ...] = (
    *DATABASE_UNAVAILABLE_ERRORS,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError)
# How long the cache is left alone after it failed: a Redis that is down costs each write its
# connect timeout, which the orders must not wait for.
CACHE_PAUSE_SECONDS = 5.0
# Orders whose cached copy may be stale (written while Redis was unreachable), removed from the
# cache once it answers again; past this many the oldest are forgotten (and logged).
MAX_STALE_CACHE_KEYS = 100_000
STORE_ATTEMPTS = 3

CACHE_ERRORS = Counter(
    "foodflow_status_cache_errors_total",
    "Order status cache (Redis) operations that failed; PostgreSQL answered instead",
    ["operation"],
)


class StateStoreUnavailable(ServiceUnavailable):
    """PostgreSQL, which holds the order state, did not answer."""


class SaveOutcome(IntEnum):
    CONFLICT = -1  # another status holds this version: someone else drives the order
    ALREADY_THERE = 0  # this very transition (or a later one) is stored: a replay
    WRITTEN = 1


@dataclass(frozen=True)
class _Row:
    """One transition to store."""

    order_id: UUID
    version: int
    status: str
    transition: str  # `transition_key` of this version's status and reason
    in_saga: bool
    snapshot: str
    request: str | None
    created_at: datetime


def transition_key(status: str, reason: str | None) -> str:
    """What makes a transition itself: its status and its reason ("FAILED/TIMED_OUT"). Two
    sagas of one order may both fail it at one version, for different reasons; only the same
    status with the same reason is a replay."""
    return f"{status}/{reason}" if reason else status


def _stored_at(stored: str, incoming: str) -> str:
    """SQL: the `transition_key` the row `stored` holds at `incoming`'s version: its current
    status and reason at that very version, else its timeline's entry (NULL when it has none,
    or the version is not reached yet). Parsed only for rows that were not written."""
    return f"""CASE
    WHEN {stored}.version = {incoming}.version
        THEN concat_ws('/', {stored}.status, {stored}.snapshot::jsonb ->> 'reason')
    WHEN {stored}.version > {incoming}.version THEN (
        SELECT concat_ws('/', h ->> 'status', h ->> 'reason')
        FROM jsonb_array_elements({stored}.snapshot::jsonb -> 'history') AS h
        WHERE (h ->> 'version')::int = {incoming}.version LIMIT 1)
END"""


# Version-guarded upsert of many orders in one statement. The final SELECT sees the table as it
# was before the statement (a data-modifying WITH runs on one snapshot), so for each row not
# written it tells a replay (stored version newer, or the same transition) from a conflict.
_SAVE = (
    """
WITH incoming AS (
    SELECT * FROM unnest(
        $1::uuid[], $2::int[], $3::text[], $4::bool[], $5::text[], $6::text[], $7::timestamptz[]
    ) AS t(order_id, version, status, in_saga, snapshot, request, created_at)
), written AS (
    INSERT INTO order_state AS s
        (order_id, version, status, in_saga, snapshot, request, created_at)
    SELECT order_id, version, status, in_saga, snapshot, request, created_at FROM incoming
    ON CONFLICT (order_id) DO UPDATE SET
        version = EXCLUDED.version,
        status = EXCLUDED.status,
        in_saga = EXCLUDED.in_saga,
        snapshot = EXCLUDED.snapshot,
        request = CASE WHEN EXCLUDED.in_saga THEN COALESCE(EXCLUDED.request, s.request) END,
        updated_at = now(),
        claimed_until = NULL
    WHERE s.version < EXCLUDED.version
    RETURNING s.order_id
)
SELECT i.order_id, w.order_id IS NOT NULL AS written, before.version AS stored_version,
       CASE WHEN w.order_id IS NULL THEN """
    + _stored_at("before", "i")
    + """ END AS stored
FROM incoming i
LEFT JOIN written w ON w.order_id = i.order_id
LEFT JOIN order_state before ON before.order_id = i.order_id
"""
)

_CURRENT = (
    "SELECT i.order_id, s.version, "
    + _stored_at("s", "i")
    + " AS stored FROM unnest($1::uuid[], $2::int[]) AS i(order_id, version)"
    " JOIN order_state s ON s.order_id = i.order_id"
)
_SNAPSHOTS = "SELECT order_id, snapshot FROM order_state WHERE order_id = ANY($1::uuid[])"
_REQUEST = "SELECT request FROM order_state WHERE order_id = $1"
_PRUNE = """
DELETE FROM order_state WHERE order_id IN (
    SELECT order_id FROM order_state
    WHERE NOT in_saga AND updated_at < now() - make_interval(secs => $1)
    LIMIT $2
)
"""

# Unfinished orders the saga took in long ago, each leased to one sweeper (of any instance) for
# a while: the lease is dropped with the order's next transition.
_CLAIM_STALE = """
UPDATE order_state SET claimed_until = now() + make_interval(secs => $2)
WHERE order_id IN (
    SELECT order_id FROM order_state
    WHERE in_saga
      AND created_at < now() - make_interval(secs => $1)
      AND (claimed_until IS NULL OR claimed_until < now())
    ORDER BY created_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
RETURNING order_id, request
"""

# The cached copy only ever moves forward: a late or repeated write of an older version is
# dropped (the truth is in PostgreSQL; this keeps a reader from seeing a status go back).
_CACHE = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and tonumber(decoded['version']) and tonumber(decoded['version']) >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
"""


def _decide(
    version: int, transition: str, stored_version: int | None, stored: str | None
) -> SaveOutcome:
    """What an unwritten transition means, given what was stored (`stored`: the transition
    stored at this version, see `_stored_at`).

    A replay only when that very transition is stored: a newer version alone does not make
    one, since a saga that fell behind (a sweep of a slow one, a redelivery) writes a version
    the other saga already wrote with another transition; it must stop, not announce its own.
    """
    if stored_version is None:
        return SaveOutcome.CONFLICT  # written by someone else meanwhile: read it again
    if stored_version >= version and stored == transition:
        return SaveOutcome.ALREADY_THERE
    return SaveOutcome.CONFLICT


class StatusCache:
    """The Redis copy of order snapshots. Every failure is absorbed: PostgreSQL answers instead,
    and for `CACHE_PAUSE_SECONDS` after one the cache is not tried at all."""

    def __init__(self, client: aioredis.Redis, ttl_seconds: int) -> None:
        self._redis = client
        self._ttl = ttl_seconds
        self._sha = hashlib.sha1(_CACHE.encode()).hexdigest()
        self._paused_until = 0.0
        self._stale: dict[str, None] = {}  # ordered set of keys to drop once Redis is back

    def _available(self) -> bool:
        return time.monotonic() >= self._paused_until

    def _failed(self, operation: str, exc: BaseException) -> None:
        CACHE_ERRORS.labels(operation).inc()
        if self._available():
            log.warning(
                "Order status cache unavailable (%s: %s); reading and writing PostgreSQL only"
                " for %.0fs",
                operation,
                exc,
                CACHE_PAUSE_SECONDS,
            )
        self._paused_until = time.monotonic() + CACHE_PAUSE_SECONDS

    def _mark_stale(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._stale[key] = None
        while len(self._stale) > MAX_STALE_CACHE_KEYS:
            forgotten = next(iter(self._stale))
            del self._stale[forgotten]
            log.warning("Forgot that the cached status %s may be stale", forgotten)

    async def _drop_stale(self) -> None:
        if not self._stale:
            return
        keys = list(self._stale)
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            await self._redis.delete(*chunk)
            for key in chunk:
                self._stale.pop(key, None)
        log.info("Dropped %d cached statuses written while the cache was away", len(keys))

    async def put(self, snapshots: Sequence[OrderSnapshot]) -> None:
        """Copy `snapshots` (stored in PostgreSQL already) to the cache, never backwards."""
        await self.put_json([(s.order_id, s.version, s.model_dump_json()) for s in snapshots])

    async def put_json(self, entries: Sequence[tuple[UUID, int, str]]) -> None:
        """`put` of snapshots as (order id, version, JSON): one pipeline for all of them."""
        if not entries:
            return
        keys = [order_status_key(order_id) for order_id, _, _ in entries]
        if not self._available():
            self._mark_stale(keys)
            return
        try:
            await self._drop_stale()
            await self._run_script(keys, entries)
        except RedisError as exc:
            self._failed("write", exc)
            self._mark_stale(keys)

    async def _run_script(
        self, keys: Sequence[str], entries: Sequence[tuple[UUID, int, str]]
    ) -> None:
        """The cache script over every entry, by its SHA1, in one pipeline. A Redis that does not
        know the script (restarted, or SCRIPT FLUSH) is given it and the pipeline is sent again
        (the script is idempotent). redis-py's own `Script` in a pipeline asks `SCRIPT EXISTS`
        before every pipeline: one more round trip per batch of saves."""
        for attempt in range(2):
            pipe = self._redis.pipeline(transaction=False)
            for key, (_, version, snapshot) in zip(keys, entries, strict=True):
                pipe.evalsha(self._sha, 1, key, snapshot, version, self._ttl)
            try:
                await pipe.execute()
                return
            except NoScriptError:
                if attempt:
                    raise
                await self._redis.script_load(_CACHE)

    async def get(self, order_id: UUID | str) -> bytes | str | None:
        """The cached JSON, or None on a miss or when the cache is unavailable."""
        if not self._available():
            return None
        try:
            raw: bytes | str | None = await self._redis.get(order_status_key(order_id))
        except RedisError as exc:
            self._failed("read", exc)
            return None
        return raw


class OrderStateStore:
    """Saves and loads order snapshots: PostgreSQL first (the truth), the cache after.

    The saves and loads of many sagas made in one turn of the event loop share one statement.
    PostgreSQL being unreachable raises `StateStoreUnavailable` after a few quick attempts.
    """

    def __init__(self, pool: asyncpg.Pool, cache: StatusCache) -> None:
        self._pool = pool
        self.cache = cache
        self._saves: Coalescer[_Row, SaveOutcome] = Coalescer(
            self._save_batch, max_batch=500, name="order state writes"
        )
        self._loads: Coalescer[UUID, str | None] = Coalescer(
            self._load_batch, max_batch=500, name="order state reads"
        )

    async def save(
        self, update: OrderSnapshot, request: ValidatedOrder | None = None
    ) -> SaveOutcome:
        """Store a transition unless that version is there already, then cache it.

        The stored JSON is the whole snapshot (a superset of the status event), so a saga can be
        resumed from it and a final state announced again without recomputing anything.
        """
        row = _Row(
            order_id=update.order_id,
            version=update.version,
            status=update.status.value,
            transition=transition_key(update.status.value, update.reason),
            in_saga=not update.status.left_saga,
            snapshot=update.model_dump_json(),
            request=request.model_dump_json() if request is not None else None,
            created_at=update.created_at,
        )
        return await _on_postgres("order state write", lambda: self._saves.submit(row))

    async def _save_batch(self, rows: list[_Row]) -> list[SaveOutcome | BaseException]:
        # One statement may change a row once: a second transition of one order in the same
        # batch goes in a later round, in the order the transitions were submitted.
        outcomes: list[SaveOutcome | BaseException] = [SaveOutcome.CONFLICT] * len(rows)
        remaining = list(range(len(rows)))
        try:
            async with self._pool.acquire() as conn:
                while remaining:
                    seen: set[UUID] = set()
                    now: list[int] = []
                    later: list[int] = []
                    for i in remaining:
                        (later if rows[i].order_id in seen else now).append(i)
                        seen.add(rows[i].order_id)
                    for i, outcome in zip(
                        now, await _save_round(conn, [rows[i] for i in now]), strict=True
                    ):
                        outcomes[i] = outcome
                    remaining = later
        except DB_ERRORS as exc:
            return [exc] * len(rows)
        # The cache is written before any saver goes on (to announce the transition), in one
        # pipeline for the whole batch; a cache that fails costs nothing but the copy.
        written = [r for r, o in zip(rows, outcomes, strict=True) if o is SaveOutcome.WRITTEN]
        await self.cache.put_json([(r.order_id, r.version, r.snapshot) for r in written])
        return outcomes

    async def load_snapshot(self, order_id: UUID | str) -> OrderSnapshot | None:
        """The order's stored snapshot (from PostgreSQL), or None before it is taken in."""
        key = order_id if isinstance(order_id, UUID) else UUID(order_id)
        raw = await _on_postgres("order state read", lambda: self._loads.submit(key))
        return OrderSnapshot.model_validate_json(raw) if raw else None

    async def _load_batch(self, ids: list[UUID]) -> list[str | BaseException | None]:
        try:
            async with self._pool.acquire() as conn:
                rows = await conn.fetch(_SNAPSHOTS, list(set(ids)))
        except DB_ERRORS as exc:
            return [exc] * len(ids)
        found: dict[UUID, str] = {row["order_id"]: row["snapshot"] for row in rows}
        return [found.get(i) for i in ids]

    async def load_request(self, order_id: UUID | str) -> ValidatedOrder | None:
        raw = await _on_postgres(
            "order request read", lambda: self._pool.fetchval(_REQUEST, _uuid(order_id))
        )
        return ValidatedOrder.model_validate_json(raw) if raw else None

    async def claim_stale(
        self, older_than_seconds: float, lease_seconds: float, limit: int = 100
    ) -> list[tuple[UUID, ValidatedOrder | None]]:
        """Orders the saga took in over `older_than_seconds` ago and has not finished, each
        leased to this caller for `lease_seconds` (another sweeper skips them meanwhile)."""
        rows = await _on_postgres(
            "order state sweep",
            lambda: self._pool.fetch(_CLAIM_STALE, older_than_seconds, lease_seconds, limit),
        )
        return [
            (
                row["order_id"],
                ValidatedOrder.model_validate_json(row["request"]) if row["request"] else None,
            )
            for row in rows
        ]

    async def prune(self, older_than_seconds: float, limit: int = 1000) -> int:
        """Forget up to `limit` orders that left the saga over `older_than_seconds` ago (the
        `orders` table keeps them); returns how many."""
        status = await _on_postgres(
            "order state prune", lambda: self._pool.execute(_PRUNE, older_than_seconds, limit)
        )
        return int(status.rsplit(" ", 1)[-1])


async def _save_round(conn: asyncpg.Connection, rows: Sequence[_Row]) -> list[SaveOutcome]:
    columns = [
        [r.order_id for r in rows],
        [r.version for r in rows],
        [r.status for r in rows],
        [r.in_saga for r in rows],
        [r.snapshot for r in rows],
        [r.request for r in rows],
        [r.created_at for r in rows],
    ]
    by_id = {rec["order_id"]: rec for rec in await conn.fetch(_SAVE, *columns)}
    outcomes: list[SaveOutcome] = []
    unsure: list[int] = []
    for i, row in enumerate(rows):
        rec = by_id[row.order_id]
        if rec["written"]:
            outcomes.append(SaveOutcome.WRITTEN)
            continue
        outcomes.append(_decide(row.version, row.transition, rec["stored_version"], rec["stored"]))
        if rec["stored_version"] is None or rec["stored_version"] < row.version:
            unsure.append(i)  # another transaction wrote it meanwhile: look at what it wrote
    if unsure:
        current = {
            rec["order_id"]: rec
            for rec in await conn.fetch(
                _CURRENT, [rows[i].order_id for i in unsure], [rows[i].version for i in unsure]
            )
        }
        for i in unsure:
            rec = current.get(rows[i].order_id)
            stored = (rec["version"], rec["stored"]) if rec else (None, None)
            outcomes[i] = _decide(rows[i].version, rows[i].transition, *stored)
    return outcomes


async def _on_postgres(what: str, call: Callable[[], Awaitable[T]]) -> T:
    """`call()`, tried again briefly while PostgreSQL is unreachable; then
    `StateStoreUnavailable` (the saga waits out a longer outage behind its dependency gate)."""
    try:
        return await retry_async(
            call, retry_on=DB_ERRORS, attempts=STORE_ATTEMPTS, max_delay=1.0, what=what
        )
    except DB_ERRORS as exc:
        raise StateStoreUnavailable(f"{what}: PostgreSQL is unavailable ({exc})") from exc


def _uuid(order_id: UUID | str) -> UUID:
    return order_id if isinstance(order_id, UUID) else UUID(order_id)


# --- reads for those who only look (the gateway, the command line, the tools) ------------------


class StatusReader:
    """An order's current state as the cache has it, else as PostgreSQL has it (which then
    fills the cache): one GET when cached, one indexed read when not."""

    def __init__(self, db: asyncpg.Pool | asyncpg.Connection, cache: StatusCache) -> None:
        self._db = db
        self._cache = cache

    async def snapshot(self, order_id: UUID | str) -> OrderSnapshot | None:
        """The order's snapshot (its status with the whole history), or None before the saga
        took it in."""
        raw = await self._cache.get(order_id)
        if raw:
            return OrderSnapshot.model_validate_json(raw)
        try:
            raw = await self._db.fetchval(_SNAPSHOT, _uuid(order_id))
        except DB_ERRORS as exc:
            raise StateStoreUnavailable(
                f"order state read: PostgreSQL is unavailable ({exc})"
            ) from exc
        if not raw:
            return None
        snapshot = OrderSnapshot.model_validate_json(raw)
        await self._cache.put([snapshot])
        return snapshot

    async def status(self, order_id: UUID | str) -> OrderStatusUpdate | None:
        snapshot = await self.snapshot(order_id)
        return snapshot.status_update() if snapshot is not None else None


_SNAPSHOT = "SELECT snapshot FROM order_state WHERE order_id = $1"


async def stored_status_values(
    db: asyncpg.Pool | asyncpg.Connection, order_ids: Sequence[UUID | str]
) -> dict[str, str]:
    """The current status of each of `order_ids` the saga took in, by order id (as text), from
    PostgreSQL: for tools that check thousands of orders at once."""
    rows = await db.fetch(
        "SELECT order_id::text AS id, status FROM order_state WHERE order_id = ANY($1::uuid[])",
        [_uuid(i) for i in order_ids],
    )
    return {row["id"]: row["status"] for row in rows}


async def cached_status_values(
    client: aioredis.Redis, order_ids: Sequence[UUID | str], *, chunk: int = 500
) -> list[str | None]:
    """The cached status value of each order (None where the cache has none), by `MGET`s of
    `chunk`: for the benchmark, which checks the cache is written before an event is announced.
    Only the `status` field is decoded."""
    values: list[str | None] = []
    for start in range(0, len(order_ids), chunk):
        keys = [order_status_key(i) for i in order_ids[start : start + chunk]]
        for raw in await client.mget(keys):
            values.append(orjson.loads(raw).get("status") if raw else None)
    return values
