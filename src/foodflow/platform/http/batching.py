"""Request coalescing: the calls many coroutines make in the same turn of the event loop
travel as one batch call.

The order manager drives hundreds of orders at once, and each order's saga is written one call
at a time (`await inventory.reserve(...)`). A `Coalescer` keeps that shape for the caller while
the wire sees one request per batch: every `submit` made before the loop comes round joins the
batch, at most `max_batches_in_flight` batches are out at a time, and what arrives while they
are out waits for the next one. Under light load a batch holds one item and costs nothing
extra; under heavy load batches grow by themselves, which is where the time per item falls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Res = TypeVar("Res")

# One answer per item, in order: a result, or the exception that item's caller gets.
SendBatch = Callable[[list[Req]], Awaitable[Sequence[Res | BaseException]]]


class Coalescer(Generic[Req, Res]):
    def __init__(
        self,
        send: SendBatch[Req, Res],
        *,
        max_batch: int = 200,
        max_batches_in_flight: int = 4,
        name: str = "batch",
    ) -> None:
        if max_batch < 1 or max_batches_in_flight < 1:
            raise ValueError("max_batch and max_batches_in_flight must be at least 1")
        self._send = send
        self._max_batch = max_batch
        self._max_in_flight = max_batches_in_flight
        self.name = name
        self._pending: list[tuple[Req, asyncio.Future[Res]]] = []
        self._in_flight = 0
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, request: Req) -> Res:
        """The answer to `request`, sent in a batch with whatever else was submitted with it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Res] = loop.create_future()
        self._pending.append((request, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        while self._pending and self._in_flight < self._max_in_flight:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(
                self._deliver(batch), name=f"{self.name} batch"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, batch: list[tuple[Req, asyncio.Future[Res]]]) -> None:
        answers: Sequence[Res | BaseException]
        try:
            answers = await self._send([request for request, _ in batch])
            if len(answers) != len(batch):
                raise RuntimeError(
                    f"{self.name}: {len(answers)} answers to a batch of {len(batch)} items"
                )
        except Exception as exc:  # every caller of the batch gets it (and may retry)
            answers = [exc] * len(batch)
        except asyncio.CancelledError:  # shutting down: nobody waits for an answer forever
            for _, future in batch:
                future.cancel()
            raise
        finally:
            self._in_flight -= 1
            if self._pending and not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)
        for (_, future), answer in zip(batch, answers, strict=True):
            if future.done():  # its caller gave up (a timeout); the answer has no taker
                continue
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer)
