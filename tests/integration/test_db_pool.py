"""The shared asyncpg pool against the real PostgreSQL."""

from __future__ import annotations

import asyncio
import socket
from decimal import Decimal

import asyncpg
import pytest

from foodflow.platform.config import Settings
from foodflow.platform.db.pool import create_pool, database_ready
from foodflow.platform.db.unit_of_work import PostgresTransaction, transaction_slots

pytestmark = pytest.mark.integration


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_pool_reads_numeric_as_decimal_and_is_ready(settings: Settings) -> None:
    pool = await create_pool(settings, max_size=2)
    try:
        price = await pool.fetchval(
            "SELECT price FROM inventory_items WHERE item_id = $1", "sushi-set"
        )
        assert price == Decimal("25.50")
        assert isinstance(price, Decimal)
        assert await database_ready(pool)
    finally:
        await pool.close()
    assert not await database_ready(pool)


async def test_connect_retry_is_bounded(settings: Settings) -> None:
    unreachable = settings.model_copy(update={"postgres_port": closed_port()})
    with pytest.raises(OSError):
        await create_pool(unreachable, attempts=2)


async def test_a_connection_given_back_inside_a_transaction_is_rolled_back(
    settings: Settings,
) -> None:
    """The pool skips asyncpg's reset query, not the rollback: what a handler left open (an
    exception between BEGIN and COMMIT) does not hold its locks for the next user."""
    pool = await create_pool(settings, min_size=2, max_size=2)
    try:
        async with pool.acquire() as connection:
            await connection.execute("BEGIN")
            await connection.execute("SELECT pg_advisory_xact_lock(4242)")
        async with pool.acquire() as first, pool.acquire() as second:
            for connection in (first, second):
                assert not connection.is_in_transaction()
                assert await connection.fetchval("SELECT pg_try_advisory_xact_lock(4242)")
    finally:
        await pool.close()


async def test_a_connection_given_back_is_not_reset_with_a_statement(settings: Settings) -> None:
    """What the pool saves: no `RESET ALL` (and the rest of asyncpg's reset query) on release;
    a session setting made on purpose is still there for the next user of the connection."""
    pool = await create_pool(settings, min_size=1, max_size=1)
    try:
        async with pool.acquire() as connection:
            await connection.execute("SET application_name = 'foodflow-pool-test'")
        async with pool.acquire() as connection:
            name = await connection.fetchval("SHOW application_name")
        assert name == "foodflow-pool-test"
    finally:
        await pool.close()


async def _step_that_saves_on_the_pool_too(
    pool: asyncpg.Pool, slots: asyncio.Semaphore | None, started: asyncio.Barrier
) -> None:
    """What a staff step of the restaurant service does (and a courier step of the delivery
    service): a transaction on one connection, and inside it the order's state saved on
    another connection of the same pool."""
    async with PostgresTransaction(pool, slots) as uow:
        await uow.connection.execute("SELECT 1")
        await started.wait()
        await pool.fetchval("SELECT 1")
        await uow.commit()


async def test_steps_that_need_two_connections_do_not_wedge_the_pool(settings: Settings) -> None:
    pool = await create_pool(settings, max_size=2)
    try:
        # As many such steps at once as the pool has connections: each holds one and waits
        # for another, forever (the reviewer's finding on issue 17; reproduced here).
        wedged = asyncio.Barrier(2)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(3):
                await asyncio.gather(
                    *(_step_that_saves_on_the_pool_too(pool, None, wedged) for _ in range(2))
                )
    finally:
        pool.terminate()
    pool = await create_pool(settings, max_size=2)
    try:
        slots = transaction_slots(pool)
        # With the slots, half the pool at most is held by such steps: all of them finish.
        async with asyncio.timeout(10):
            await asyncio.gather(
                *(
                    _step_that_saves_on_the_pool_too(pool, slots, asyncio.Barrier(1))
                    for _ in range(8)
                )
            )
    finally:
        await pool.close()
