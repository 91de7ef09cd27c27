"""Every owner's migrations, applied together when the local PostgreSQL comes up.

Each owner also applies its own migrations when it starts (see
`foodflow.platform.db.migrations`); applying them all here lets the tools and the tests find
the tables before any service has run.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import asyncpg

from foodflow.platform.db.migrations import migrate

# Owner -> the package whose `migrations/` folder holds its tables. The order tables belong to
# the shared `foodflow.orders` package: the writer writes them, the gateway and tools read them.
OWNERS: dict[str, str] = {
    "orders": "foodflow.orders",
    "inventory_service": "foodflow.inventory_service",
    "payment_service": "foodflow.payment_service",
    "delivery_service": "foodflow.delivery_service",
    "restaurant_service": "foodflow.restaurant_service",
    "gateway": "foodflow.gateway",
}


def migrations_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LookupError(f"{package} is not a package")
    return Path(next(iter(spec.submodule_search_locations))) / "migrations"


async def migrate_all(connection: asyncpg.Connection) -> dict[str, list[str]]:
    """Apply every owner's pending migrations; returns what each applied."""
    return {
        owner: await migrate(connection, owner, migrations_dir(package))
        for owner, package in OWNERS.items()
    }
