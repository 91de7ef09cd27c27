"""The one way a service runs something every few seconds (sweepers, rounds, refreshes)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

log = logging.getLogger(__name__)


async def run_periodically(
    step: Callable[[], Awaitable[object]],
    interval: float,
    *,
    what: str,
    initial_delay: float | None = None,
) -> None:
    """Await `step()` every `interval` seconds until cancelled.

    A failing step is logged and the loop goes on (the next round retries it); cancellation
    ends the loop at once, also in the middle of a step.
    """
    await asyncio.sleep(interval if initial_delay is None else initial_delay)
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; next round in %.1fs", what, interval)
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def periodic_task(
    step: Callable[[], Awaitable[object]],
    interval: float,
    *,
    what: str,
    initial_delay: float | None = None,
) -> AsyncIterator[asyncio.Task[None]]:
    """`run_periodically` as a background task for the span of an `async with` (a lifespan)."""
    task = asyncio.create_task(
        run_periodically(step, interval, what=what, initial_delay=initial_delay), name=what
    )
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
