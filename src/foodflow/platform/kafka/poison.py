"""Isolating the message a failing batch fails on, so that one bad message never wedges a consumer.

A batch whose handler raises is split in halves, each half handled again, down to single
messages; a message that still fails on its own `attempts` times is handed to a dead-letter
sink, and everything else of the batch is handled. A failure that says a dependency is down
(`is_outage`) is never bisected: no message is at fault, and the consumer hands the batch back
to retry it whole after a backoff, as it always did.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg
from confluent_kafka import KafkaException, Message
from prometheus_client import Counter
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from foodflow.platform.db.pool import DATABASE_UNAVAILABLE_ERRORS
from foodflow.platform.errors import PublishError, ServiceUnavailable
from foodflow.platform.kafka.producer import refuses_message
from foodflow.platform.retry import backoff_delay

log = logging.getLogger(__name__)

Handle = Callable[[list[Message]], Awaitable[None]]
Park = Callable[[Message, str], Awaitable[None]]

# Between the tries of one isolated message: short, since a message that fails alone for a
# reason other than an outage fails the same way at once.
ALONE_RETRY_BASE_SECONDS = 0.2
ALONE_RETRY_CAP_SECONDS = 1.0
MAX_REASON_CHARS = 1000

# Errors that mean "a server is not there" rather than "this message is bad". Connection and
# timeout errors (OSError covers both), Redis and PostgreSQL unreachable or restarting; Kafka
# errors and refused publishes are triaged by their code below.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    ServiceUnavailable,
    OSError,
    RedisConnectionError,
    RedisTimeoutError,
    asyncpg.InterfaceError,
    *DATABASE_UNAVAILABLE_ERRORS,
)

POISON_MESSAGES = Counter(
    "foodflow_poison_messages_total",
    "Messages a consumer dead-lettered because they failed alone POISON_ATTEMPTS times",
    ["group"],
)
ISOLATIONS = Counter(
    "foodflow_batch_isolations_total",
    "Failing batches a consumer split to find the message they fail on",
    ["group"],
)


def is_outage(exc: BaseException) -> bool:
    """True when `exc` (or an error it was raised from) says a dependency is unavailable.

    The line: `ServiceUnavailable` and its subclasses, connection and timeout errors, Redis and
    PostgreSQL unreachable, and any Kafka error except one that names the message itself (too
    large, invalid: `refuses_message`). Everything else is the message's fault. An outage that
    surfaced as an error of another kind would be bisected and its messages dead-lettered (they
    can be replayed with `foodflow dlq replay`), so the line leans towards "outage".
    """
    seen: BaseException | None = exc
    for _ in range(8):  # a chain of causes is short; a cycle must not loop for ever
        if seen is None:
            return False
        if isinstance(seen, PublishError):
            return not seen.refused
        if isinstance(seen, KafkaException):
            return not refuses_message(seen.args[0] if seen.args else None)
        if isinstance(seen, ValueError):  # asyncpg's InterfaceError for a bad query argument
            return False
        if isinstance(seen, UNAVAILABLE_ERRORS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def reason_for(exc: BaseException, attempts: int, group: str) -> str:
    """The dead letter's error for a message that failed alone: the exception, bounded."""
    text = f"failed {attempts} time(s) alone in consumer group {group}: {type(exc).__name__}: {exc}"
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS] + "…"


class PoisonIsolator:
    """Handles a batch with `handle`; on a failure that is not an outage, bisects it and parks
    each message that fails alone `attempts` times with `park(message, reason)`.

    Returns normally once every message is handled or parked; raises the outage (or a failure
    of `park` itself) otherwise, and the caller hands the whole batch back. Halves are handled
    one after the other, oldest first, so a handler sees its messages in order.
    """

    def __init__(self, handle: Handle, park: Park, *, attempts: int, group: str) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self._handle = handle
        self._park = park
        self.attempts = attempts
        self.group = group

    async def __call__(self, batch: list[Message]) -> None:
        error = await self._try(batch)
        if error is None:
            return
        ISOLATIONS.labels(self.group).inc()
        log.warning(
            "Handling %d message(s) failed (%s: %s); isolating the message at fault",
            len(batch),
            type(error).__name__,
            error,
        )
        await self._isolate(batch, error)

    async def _try(self, batch: list[Message]) -> Exception | None:
        """None when `batch` was handled; the error when it failed; raises an outage."""
        try:
            await self._handle(batch)
        except Exception as exc:
            if is_outage(exc):
                raise
            return exc
        return None

    async def _isolate(self, batch: list[Message], error: Exception) -> None:
        """`batch` just failed with `error`: handle its halves, or try its one message alone."""
        if len(batch) == 1:
            await self._try_alone(batch[0], error)
            return
        middle = len(batch) // 2
        for half in (batch[:middle], batch[middle:]):
            failed = await self._try(half)
            if failed is not None:
                await self._isolate(half, failed)

    async def _try_alone(self, msg: Message, error: Exception) -> None:
        """`msg` failed alone once with `error`: try again up to `attempts` in all, then park."""
        for attempt in range(2, self.attempts + 1):
            await asyncio.sleep(
                backoff_delay(attempt - 1, ALONE_RETRY_BASE_SECONDS, ALONE_RETRY_CAP_SECONDS)
            )
            failed = await self._try([msg])
            if failed is None:
                return
            error = failed
        log.error(
            "%s[%s]@%s failed %d time(s) alone; dead-lettering it: %s",
            msg.topic(),
            msg.partition(),
            msg.offset(),
            self.attempts,
            error,
        )
        await self._park(msg, reason_for(error, self.attempts, self.group))
        POISON_MESSAGES.labels(self.group).inc()
