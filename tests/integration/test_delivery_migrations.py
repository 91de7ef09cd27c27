"""The delivery service's migrations against the real PostgreSQL, in a scratch schema: the
baseline applies over tables that exist already (a database made before migrations) and
changes nothing there; 0002 gives every delivery from before its pickup point from the old
restaurants table and drops that table; a second run applies nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from foodflow.delivery_service.app import MIGRATIONS, SERVICE
from foodflow.platform.config import Settings
from foodflow.platform.db.migrations import migrate, read_migrations

pytestmark = pytest.mark.integration

TABLES = ("couriers", "deliveries")
APPLIED = ["0001_baseline", "0002_kitchen_plans"]


@pytest.fixture
async def scratch(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection whose tables all live in a fresh schema, dropped afterwards."""
    schema = f"delivery_migrations_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(settings.postgres_dsn)
    await connection.execute(f"CREATE SCHEMA {schema}")
    await connection.execute(f"SET search_path TO {schema}")
    try:
        yield connection
    finally:
        await connection.execute(f"DROP SCHEMA {schema} CASCADE")
        await connection.close()


async def contents(connection: asyncpg.Connection) -> dict[str, object]:
    """Columns, indexes and rows of the delivery tables in the connection's schema."""
    found: dict[str, object] = {}
    for table in TABLES:
        found[f"{table} columns"] = await connection.fetch(
            "SELECT column_name, data_type, is_nullable, column_default"
            " FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = $1 ORDER BY ordinal_position",
            table,
        )
        found[f"{table} indexes"] = await connection.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
            " AND tablename = $1 ORDER BY indexname",
            table,
        )
        found[f"{table} rows"] = await connection.fetch(f"SELECT * FROM {table} ORDER BY 1")
    return found


async def tables(connection: asyncpg.Connection) -> set[str]:
    rows = await connection.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    )
    return {r["table_name"] for r in rows} - {"schema_migrations"}


async def test_the_migrations_apply_once_over_existing_tables_and_keep_their_deliveries(
    scratch: asyncpg.Connection,
) -> None:
    baseline, _ = read_migrations(MIGRATIONS)
    await scratch.execute(baseline.sql)  # the tables as a database made before migrations has them
    order_id = uuid.uuid4()
    await scratch.execute(
        "INSERT INTO deliveries (order_id, user_id, state, restaurant_id, address, lat, lon)"
        " VALUES ($1, 'u-1', 'WAITING', 'tokyo-kitchen', 'Torstr. 1', 52.53, 13.40)",
        order_id,
    )
    couriers = await scratch.fetch("SELECT * FROM couriers ORDER BY 1")
    assert len(couriers) == 10

    assert await migrate(scratch, SERVICE, MIGRATIONS) == APPLIED
    after_first = await contents(scratch)
    assert await migrate(scratch, SERVICE, MIGRATIONS) == []

    assert await contents(scratch) == after_first
    assert after_first["couriers rows"] == couriers
    assert await tables(scratch) == {"couriers", "deliveries"}  # the restaurants went
    old = await scratch.fetchrow("SELECT * FROM deliveries WHERE order_id = $1", order_id)
    assert (old["restaurant_id"], old["restaurant_name"]) == ("tokyo-kitchen", "Tokyo Kitchen")
    assert (old["pickup_lat"], old["pickup_lon"]) == (52.52, 13.405)
    # Its food was ready when it was taken in (there was no kitchen to wait for).
    assert old["ready_by"] == old["waiting_since"] and old["food_ready"] is True
    assert (old["assigned_at"], old["courier_due_at"], old["arrived_at"]) == (None, None, None)
    recorded = await scratch.fetch(
        "SELECT version, name FROM schema_migrations WHERE owner = $1 ORDER BY version", SERVICE
    )
    assert [(r["version"], r["name"]) for r in recorded] == [(1, "baseline"), (2, "kitchen_plans")]


async def test_the_migrations_create_the_tables_and_seed_on_an_empty_database(
    scratch: asyncpg.Connection,
) -> None:
    assert await migrate(scratch, SERVICE, MIGRATIONS) == APPLIED
    seeded = await contents(scratch)
    assert await tables(scratch) == {"couriers", "deliveries"}
    assert len(seeded["couriers rows"]) == 10  # type: ignore[arg-type]
    assert seeded["deliveries rows"] == []
    columns = {r["column_name"]: r for r in seeded["deliveries columns"]}  # type: ignore[attr-defined]
    assert columns["restaurant_id"]["is_nullable"] == "YES"  # none until a restaurant accepts
    assert columns["food_ready"]["column_default"] == "false"
    indexes = {r["indexname"] for r in seeded["deliveries indexes"]}  # type: ignore[attr-defined]
    assert "deliveries_waiting_ready" in indexes and "deliveries_waiting" not in indexes
    assert await migrate(scratch, SERVICE, MIGRATIONS) == []
    assert await contents(scratch) == seeded
