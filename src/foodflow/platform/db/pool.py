"""The asyncpg pool every PostgreSQL-backed service starts in its lifespan.

asyncpg decodes NUMERIC as `decimal.Decimal` by default; no codec is installed here on
purpose, so money read from the database is never a float.

A connection given back to the pool is not reset with asyncpg's default query (`SELECT
pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`): that was one more round trip and
statement for every acquire, about a fifth of all the statements PostgreSQL ran at 30 orders/s
(docs/benchmarks.md). Nothing here leaves session state behind: locks are transaction-scoped
(`pg_advisory_xact_lock`), no session `SET`, `LISTEN` or cursor outside a transaction. A
connection given back inside a transaction is still rolled back (asyncpg always does that).
Code that needs session state takes a connection of its own, not one from this pool.
"""

from __future__ import annotations

import logging

import asyncpg

from foodflow.platform.config import Settings
from foodflow.platform.retry import retry_async

log = logging.getLogger(__name__)

CONNECT_ATTEMPTS = 5
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 4.0
CONNECT_TIMEOUT_SECONDS = 5.0
COMMAND_TIMEOUT_SECONDS = 10.0


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """The pool's reset: nothing beyond asyncpg's own rollback of an open transaction."""


# Errors that mean "the server is not (yet) there"; a wrong password or a missing database
# will not heal by waiting, so those are raised at once.
TRANSIENT_CONNECT_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
)

# Errors a request may meet while PostgreSQL restarts or is down; services answer them with
# 503 so that callers retry instead of treating the order as bad.
DATABASE_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    *TRANSIENT_CONNECT_ERRORS,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


async def create_pool(
    settings: Settings,
    min_size: int = 1,
    max_size: int = 10,
    *,
    attempts: int = CONNECT_ATTEMPTS,
) -> asyncpg.Pool:
    """Open a pool to `settings.postgres_dsn`, retrying a few times with exponential backoff."""

    def retrying(attempt: int, exc: BaseException, delay: float) -> None:
        log.warning(
            "PostgreSQL not reachable (attempt %d/%d): %s; retrying in %.1fs",
            attempt,
            attempts,
            exc,
            delay,
        )

    try:
        pool = await retry_async(
            lambda: asyncpg.create_pool(
                settings.postgres_dsn,
                min_size=min_size,
                max_size=max_size,
                timeout=CONNECT_TIMEOUT_SECONDS,
                command_timeout=COMMAND_TIMEOUT_SECONDS,
                reset=_keep_session,
            ),
            retry_on=TRANSIENT_CONNECT_ERRORS,
            attempts=attempts,
            base_delay=FIRST_BACKOFF_SECONDS,
            max_delay=MAX_BACKOFF_SECONDS,
            on_retry=retrying,
        )
    except TRANSIENT_CONNECT_ERRORS as exc:
        log.error("PostgreSQL unreachable after %d attempts: %s", attempts, exc)
        raise
    log.info(
        "PostgreSQL pool open on %s:%s/%s",
        settings.postgres_host,
        settings.postgres_port,
        settings.postgres_db,
    )
    return pool


async def database_ready(pool: asyncpg.Pool, wait_seconds: float = 2.0) -> bool:
    """True when PostgreSQL answers `SELECT 1` within `wait_seconds`."""
    try:
        async with pool.acquire(timeout=wait_seconds) as connection:
            answer: object = await connection.fetchval("SELECT 1", timeout=wait_seconds)
            return answer == 1
    except (asyncpg.PostgresError, asyncpg.InterfaceError, *DATABASE_UNAVAILABLE_ERRORS) as exc:
        log.warning("PostgreSQL readiness check failed: %s", exc)
        return False
