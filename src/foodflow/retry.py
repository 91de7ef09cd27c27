"""Bounded retries with exponential backoff and full jitter, for calls across the network."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


async def retry_async(
    call: Callable[[], Awaitable[T]],
    *,
    retry_on: tuple[type[BaseException], ...],
    attempts: int,
    base_delay: float = 0.1,
    max_delay: float = 2.0,
    what: str = "call",
) -> T:
    """Await `call()` up to `attempts` times, sleeping a random 0..min(max, base*2^n) between."""
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except retry_on as exc:
            if attempt == attempts:
                raise
            delay = random.uniform(0, min(max_delay, base_delay * 2 ** (attempt - 1)))
            log.warning(
                "%s failed (%s), retry %d/%d in %.2fs", what, exc, attempt, attempts - 1, delay
            )
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
