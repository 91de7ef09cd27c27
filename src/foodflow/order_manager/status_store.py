"""The current status of each order in Redis, under `order_status:<order_id>`, with a TTL."""

from __future__ import annotations

from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from foodflow.contracts.orders import OrderStatusUpdate, order_status_key
from foodflow.retry import retry_async

# Write only if the stored version is older: a replayed or late update never rolls a status back.
_SET_IF_NEWER = """
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


class RedisStatusStore:
    def __init__(self, client: aioredis.Redis, ttl_seconds: int) -> None:
        self._redis = client
        self._ttl = ttl_seconds
        self._set_if_newer = client.register_script(_SET_IF_NEWER)

    async def save(self, update: OrderStatusUpdate) -> bool:
        """Store `update` unless a same-or-newer version is there; True when written."""

        async def attempt() -> bool:
            written = await self._set_if_newer(
                keys=[order_status_key(update.order_id)],
                args=[update.model_dump_json(), update.version, self._ttl],
            )
            return bool(written)

        return await retry_async(
            attempt,
            retry_on=(RedisConnectionError, RedisTimeoutError),
            attempts=5,
            what="redis status write",
        )

    async def load(self, order_id: UUID | str) -> OrderStatusUpdate | None:
        raw = await self._redis.get(order_status_key(order_id))
        return OrderStatusUpdate.model_validate_json(raw) if raw else None
