"""The delivery service's migrations against the real PostgreSQL, in a scratch schema: the
baseline applies over tables that exist already (a database made before migrations), changes
nothing there, and a second run applies nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from foodflow.delivery_service.app import MIGRATIONS, SERVICE
from foodflow.platform.config import Settings
from foodflow.platform.db.migrations import migrate, read_migrations

pytestmark = pytest.mark.integration

TABLES = ("restaurants", "restaurant_items", "couriers", "deliveries")


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


async def test_the_baseline_applies_once_over_existing_tables_and_then_never_again(
    scratch: asyncpg.Connection,
) -> None:
    (baseline,) = read_migrations(MIGRATIONS)
    await scratch.execute(baseline.sql)  # the tables as a database made before migrations has them
    before = await contents(scratch)
    assert len(before["couriers rows"]) == 10  # type: ignore[arg-type]

    assert await migrate(scratch, SERVICE, MIGRATIONS) == ["0001_baseline"]
    after_first = await contents(scratch)
    assert await migrate(scratch, SERVICE, MIGRATIONS) == []
    after_second = await contents(scratch)

    assert after_first == before
    assert after_second == before
    recorded = await scratch.fetch(
        "SELECT version, name FROM schema_migrations WHERE owner = $1", SERVICE
    )
    assert [(r["version"], r["name"]) for r in recorded] == [(1, "baseline")]


async def test_the_baseline_creates_the_tables_and_seeds_on_an_empty_database(
    scratch: asyncpg.Connection,
) -> None:
    assert await migrate(scratch, SERVICE, MIGRATIONS) == ["0001_baseline"]
    seeded = await contents(scratch)
    assert len(seeded["restaurants rows"]) == 4  # type: ignore[arg-type]
    assert len(seeded["restaurant_items rows"]) == 10  # type: ignore[arg-type]
    assert len(seeded["couriers rows"]) == 10  # type: ignore[arg-type]
    assert seeded["deliveries rows"] == []
    assert await migrate(scratch, SERVICE, MIGRATIONS) == []
    assert await contents(scratch) == seeded
