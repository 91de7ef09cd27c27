"""Retries with exponential backoff and full jitter: the one retry helper of foodflow.

`retry_async` wraps a call that may fail transiently (bounded `attempts`, or `None` for "until
it succeeds", for work that must not be dropped); `backoff_delay` is the same schedule for the
few loops that cannot be written as one call (the Kafka consumer seeks back before retrying).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

OnRetry = Callable[[int, BaseException, float], None]


def backoff_delay(attempt: int, base_delay: float, max_delay: float) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): U(0, min(max, base*2^n))."""
    return random.uniform(0, min(max_delay, base_delay * 2 ** min(attempt - 1, 32)))


async def retry_async(
    call: Callable[[], Awaitable[T]],
    *,
    retry_on: tuple[type[BaseException], ...],
    attempts: int | None,
    base_delay: float = 0.1,
    max_delay: float = 2.0,
    what: str = "call",
    on_retry: OnRetry | None = None,
    retry_if: Callable[[BaseException], bool] | None = None,
) -> T:
    """Await `call()` up to `attempts` times (forever when None), backing off between tries.

    Only errors of the `retry_on` types are retried, and of those only the ones `retry_if`
    accepts (when given: e.g. a Kafka error that says it is retriable); any other error, or the
    last attempt's, is raised. `on_retry(attempt, error, delay)` runs before each wait (metrics,
    a custom log line); without it each retry logs a warning.
    """
    if attempts is not None and attempts < 1:
        raise ValueError("attempts must be at least 1")
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call()
        except retry_on as exc:
            if (attempts is not None and attempt >= attempts) or (
                retry_if is not None and not retry_if(exc)
            ):
                raise
            delay = backoff_delay(attempt, base_delay, max_delay)
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            else:
                left = "∞" if attempts is None else str(attempts - 1)
                log.warning("%s failed (%s), retry %d/%s in %.2fs", what, exc, attempt, left, delay)
            await asyncio.sleep(delay)
