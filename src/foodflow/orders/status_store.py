"""The current status of each order in Redis, under `order_status:<order_id>`, with a TTL.

Beside it, for orders not yet final: the original request (`order_request:<order_id>`) and a
sorted set of their ids by age (`orders_in_flight`), so a sweeper can find and finish orders
whose saga died with its process.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from enum import IntEnum
from uuid import UUID

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from foodflow.contracts.orders import (
    OrderSnapshot,
    OrderStatusUpdate,
    ValidatedOrder,
    order_status_key,
)
from foodflow.platform.http.batching import Coalescer
from foodflow.platform.retry import retry_async

IN_FLIGHT_KEY = "orders_in_flight"
REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError)


def order_request_key(order_id: UUID | str) -> str:
    return f"order_request:{order_id}"


class SaveOutcome(IntEnum):
    CONFLICT = -1  # another status holds this version: someone else drives the order
    ALREADY_THERE = 0  # this very transition (or a later one) is stored: a replay
    WRITTEN = 1


# One round trip per transition: the version guard, the status, the in-flight index and (on
# RECEIVED) the request, all or nothing.
_SAVE = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and tonumber(decoded['version']) then
    local stored = tonumber(decoded['version'])
    local incoming = tonumber(ARGV[2])
    if stored > incoming then return 0 end
    if stored == incoming then
      if decoded['status'] == ARGV[4] then return 0 end
      return -1
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
if ARGV[5] == '1' then
  redis.call('ZREM', KEYS[2], ARGV[6])
  redis.call('DEL', KEYS[3])
else
  redis.call('ZADD', KEYS[2], ARGV[7], ARGV[6])
  if ARGV[8] ~= '' then redis.call('SET', KEYS[3], ARGV[8], 'EX', ARGV[3]) end
end
return 1
"""


ScriptCall = tuple[list[str], list[str | int | float]]  # keys and arguments of one script run


class RedisStatusStore:
    """Writes and reads of many sagas at once share round trips: the saves made in one turn
    of the event loop go as one pipeline of script calls, the snapshot reads as one MGET."""

    def __init__(self, client: aioredis.Redis, ttl_seconds: int) -> None:
        self._redis = client
        self._ttl = ttl_seconds
        self._save = client.register_script(_SAVE)
        self._saves: Coalescer[ScriptCall, SaveOutcome] = Coalescer(
            self._save_batch, max_batch=500, name="redis status writes"
        )
        self._reads: Coalescer[str, bytes | str | None] = Coalescer(
            self._read_batch, max_batch=500, name="redis status reads"
        )

    async def save(
        self, update: OrderSnapshot, request: ValidatedOrder | None = None
    ) -> SaveOutcome:
        """Store a transition unless that version is there already.

        The stored JSON is the whole snapshot (a superset of the status event), so a saga can be
        resumed from it and a final state announced again without recomputing anything.
        """
        order_id = str(update.order_id)
        call: ScriptCall = (
            [order_status_key(order_id), IN_FLIGHT_KEY, order_request_key(order_id)],
            [
                update.model_dump_json(),
                update.version,
                self._ttl,
                update.status.value,
                "1" if update.status.left_saga else "0",
                order_id,
                update.created_at.timestamp(),
                request.model_dump_json() if request is not None else "",
            ],
        )
        return await retry_async(
            lambda: self._saves.submit(call),
            retry_on=REDIS_ERRORS,
            attempts=8,
            max_delay=2.0,
            what="redis status write",
        )

    async def _save_batch(self, calls: list[ScriptCall]) -> list[SaveOutcome | BaseException]:
        pipe = self._redis.pipeline(transaction=False)
        for keys, args in calls:
            await self._save(keys=keys, args=args, client=pipe)
        results = await pipe.execute(raise_on_error=False)
        return [r if isinstance(r, BaseException) else SaveOutcome(int(r)) for r in results]

    async def _read_batch(self, keys: list[str]) -> list[bytes | str | None]:
        values: list[bytes | str | None] = await self._redis.mget(keys)
        return values

    async def load_snapshot(self, order_id: UUID | str) -> OrderSnapshot | None:
        raw = await retry_async(
            lambda: self._reads.submit(order_status_key(order_id)),
            retry_on=REDIS_ERRORS,
            attempts=8,
            max_delay=2.0,
            what="redis status read",
        )
        return OrderSnapshot.model_validate_json(raw) if raw else None

    async def load_request(self, order_id: UUID | str) -> ValidatedOrder | None:
        raw = await self._redis.get(order_request_key(order_id))
        return ValidatedOrder.model_validate_json(raw) if raw else None

    async def stale_in_flight(self, older_than_seconds: float, limit: int = 100) -> list[str]:
        """Ids of orders that entered the saga long ago and are still not final."""
        cutoff = time.time() - older_than_seconds
        ids = await self._redis.zrangebyscore(IN_FLIGHT_KEY, "-inf", cutoff, start=0, num=limit)
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    async def forget_in_flight(self, order_id: UUID | str) -> None:
        await self._redis.zrem(IN_FLIGHT_KEY, str(order_id))

    async def claim(self, order_id: UUID | str, seconds: int) -> bool:
        """A short lease so that one sweeper (of several instances) takes an order."""
        return bool(await self._redis.set(f"sweep_lock:{order_id}", "1", nx=True, ex=seconds))


# Reads for those who only look (the gateway, the command line): one GET, no retry.


async def read_status(client: aioredis.Redis, order_id: UUID | str) -> OrderStatusUpdate | None:
    """The order's live status, or None once its key expired (or before it exists)."""
    raw = await client.get(order_status_key(order_id))
    return OrderStatusUpdate.model_validate_json(raw) if raw else None


async def read_snapshot(client: aioredis.Redis, order_id: UUID | str) -> OrderSnapshot | None:
    """The order's live snapshot (its status with the whole history), or None."""
    raw = await client.get(order_status_key(order_id))
    return OrderSnapshot.model_validate_json(raw) if raw else None


async def has_status(client: aioredis.Redis, order_id: UUID | str) -> bool:
    """True while the order has a live status (the saga took it in)."""
    return bool(await client.exists(order_status_key(order_id)))


async def read_status_values(
    client: aioredis.Redis, order_ids: Sequence[UUID | str], *, chunk: int = 500
) -> list[str | None]:
    """The live status value of each order (None where it has none), by `MGET`s of `chunk`.

    For tools that check thousands of orders at once: only the `status` field is decoded.
    """
    values: list[str | None] = []
    for start in range(0, len(order_ids), chunk):
        keys = [order_status_key(i) for i in order_ids[start : start + chunk]]
        for raw in await client.mget(keys):
            values.append(orjson.loads(raw).get("status") if raw else None)
    return values
