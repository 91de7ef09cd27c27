"""The Redis client every service uses: a bounded, blocking pool that rides out a restart."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from foodflow.platform.config import Settings


def create_redis(settings: Settings, *, max_connections: int = 64) -> aioredis.Redis:
    """A client whose pooled connections reconnect and retry when Redis restarts.

    Without the retry, the first command on each pooled connection after a Redis restart
    fails ("Connection closed by server"). The pool blocks (up to 10 s) rather than failing
    when every connection is in use, so hundreds of orders in flight queue instead of erring.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=max_connections,
        timeout=10,
        socket_timeout=5,
        socket_connect_timeout=2,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=5),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return aioredis.Redis(connection_pool=pool)
