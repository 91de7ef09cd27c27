"""Fixtures shared by the integration tests of the order tables and the order state."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from foodflow.orders import records
from foodflow.platform.config import Settings


@pytest.fixture
async def orders_pool(infra: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A small pool on a database whose order tables are up to date."""
    pool = await asyncpg.create_pool(infra.postgres_dsn, min_size=1, max_size=4)
    await records.migrate_orders(pool)
    yield pool
    await pool.close()


@pytest.fixture
async def redis_client(infra: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(infra.redis_url)
    yield client
    await client.aclose()
