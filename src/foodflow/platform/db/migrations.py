"""Numbered SQL migrations, each set owned by one package, recorded in `schema_migrations`.

Every owner of tables (a service, or the `orders` package for the order tables) keeps its
schema as `migrations/NNNN_what.sql` files beside its code and applies them with `migrate()`
when it starts; `foodflow infra up` applies all of them. Each file runs once, in its own
transaction, in number order; a file that changed after it was applied stops the start
(a migration is never edited, a new one is added). Concurrent starters serialise on an
advisory lock, so two instances starting together apply each file once.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from foodflow.platform.errors import FoodflowError

log = logging.getLogger(__name__)

FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# pg_advisory_xact_lock key: any fixed bigint; this one spells "foodflow" in ASCII.
LOCK_KEY = 0x666F6F64666C6F77

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    owner      TEXT        NOT NULL,
    version    INTEGER     NOT NULL,
    name       TEXT        NOT NULL,
    checksum   TEXT        NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, version)
)
"""


class MigrationError(FoodflowError):
    """The migrations on disk and those recorded in the database disagree."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def read_migrations(directory: Path) -> list[Migration]:
    """The `NNNN_what.sql` files of `directory`, in number order; other names are refused."""
    found: list[Migration] = []
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        match = FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path}: a migration is named NNNN_what.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{directory}: two migrations share a number")
    return found


async def migrate(connection: asyncpg.Connection, owner: str, directory: Path) -> list[str]:
    """Apply `owner`'s migrations that are not yet recorded; returns the names applied."""
    wanted = read_migrations(directory)
    applied: list[str] = []
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        await connection.execute(_BOOKKEEPING)
        rows = await connection.fetch(
            "SELECT version, name, checksum FROM schema_migrations WHERE owner = $1", owner
        )
        done = {row["version"]: row for row in rows}
        for migration in wanted:
            row = done.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"{owner} migration {migration.version:04d}_{migration.name} changed"
                        " after it was applied; add a new migration instead"
                    )
                continue
            async with connection.transaction():
                await connection.execute(migration.sql)
                await connection.execute(
                    "INSERT INTO schema_migrations (owner, version, name, checksum)"
                    " VALUES ($1, $2, $3, $4)",
                    owner,
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            applied.append(f"{migration.version:04d}_{migration.name}")
            log.info("Applied %s migration %04d_%s", owner, migration.version, migration.name)
    return applied


async def migrate_pool(pool: asyncpg.Pool, owner: str, directory: Path) -> list[str]:
    """`migrate()` on a connection of `pool`: what a service's lifespan calls at start."""
    async with pool.acquire() as connection:
        return await migrate(connection, owner, directory)
