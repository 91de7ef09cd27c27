"""The PostgreSQL side of the writer: `OrderStore` over `foodflow.orders.records`, retrying
for as long as PostgreSQL is unavailable (dropping data is worse than waiting)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import asyncpg

from foodflow.contracts.orders import OrderFinalEvent
from foodflow.order_writer.services import OrdersRefused
from foodflow.orders import records
from foodflow.orders.records import WriteResult
from foodflow.platform.errors import ServiceUnavailable
from foodflow.platform.retry import retry_async

log = logging.getLogger(__name__)

# SQLSTATE classes worth retrying: connection (08), resources (53), operator intervention
# (57: shutdown, cancel), transaction rollback (40: deadlock, serialization).
TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "40")


def is_transient(exc: BaseException) -> bool:
    """True for errors that a retry can cure (PostgreSQL down, restarting, overloaded)."""
    if isinstance(exc, ValueError):  # an argument asyncpg cannot encode: bad data, not down
        return False
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", None) or ""
        return sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES
    return False


class _Unavailable(Exception):
    """A transient failure of one attempt; its cause is the database's error."""


class PostgresOrderStore:
    """Writes reduced batches in one transaction each, retrying transient failures forever.

    The waits grow exponentially with full jitter: the n-th is at most
    min(`max_backoff`, `base_backoff` * 2^(n-1)) seconds. `abort_retries()` (on shutdown) ends
    a wait at once and makes the retrying write raise ServiceUnavailable; a write that is not
    retrying finishes.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        base_backoff: float = 0.2,
        max_backoff: float = 10.0,
        statement_timeout: float = 30.0,
    ) -> None:
        self._pool = pool
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._timeout = statement_timeout
        self._abort = asyncio.Event()
        self._backing_off: set[asyncio.Task[object]] = set()
        self._interrupted: set[asyncio.Task[object]] = set()
        self.retries = 0

    def abort_retries(self) -> None:
        self._abort.set()
        for task in self._backing_off:
            self._interrupted.add(task)
            task.cancel()
        self._backing_off.clear()

    async def write(self, events: Sequence[OrderFinalEvent]) -> WriteResult:
        """Write `events` (already reduced: one per order) in one transaction, retrying."""
        if not events:
            return WriteResult()
        writer = asyncio.current_task()

        async def attempt() -> WriteResult:
            if writer is not None:
                self._backing_off.discard(writer)
            try:
                return await records.write_final_orders(self._pool, events, timeout=self._timeout)
            except Exception as exc:
                if is_transient(exc):
                    raise _Unavailable from exc
                if isinstance(exc, asyncpg.PostgresError | ValueError):
                    raise OrdersRefused(str(exc)) from exc
                raise

        def on_retry(attempt: int, error: BaseException, delay: float) -> None:
            cause = error.__cause__ or error
            self.retries += 1
            if self._abort.is_set():
                raise ServiceUnavailable(f"PostgreSQL unavailable: {cause!r}") from cause
            log.warning(
                "Writing %d order(s) failed (%s); retry %d in %.2fs",
                len(events),
                cause.__class__.__name__,
                attempt,
                delay,
            )
            if writer is not None:
                self._backing_off.add(writer)

        try:
            return await retry_async(
                attempt,
                retry_on=(_Unavailable,),
                attempts=None,
                base_delay=self._base_backoff,
                max_delay=self._max_backoff,
                on_retry=on_retry,
            )
        except asyncio.CancelledError:
            # Cancelled by abort_retries() alone (not also from outside): the wait is over.
            if writer is None or writer not in self._interrupted or writer.uncancel() > 0:
                raise
            raise ServiceUnavailable("PostgreSQL unavailable: shutting down") from None
        finally:
            if writer is not None:
                self._backing_off.discard(writer)
                self._interrupted.discard(writer)
