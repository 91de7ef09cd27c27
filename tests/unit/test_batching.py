"""The coalescer: calls made together travel together, each caller gets its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from foodflow.platform.http.batching import Coalescer


class Recorder:
    """A batch endpoint double: doubles numbers, refuses negatives, records each batch."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay
        self.in_flight = 0
        self.most_in_flight = 0

    async def __call__(self, items: list[int]) -> Sequence[int | BaseException]:
        self.batches.append(items)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(self.delay)
        self.in_flight -= 1
        return [ValueError(f"negative {i}") if i < 0 else 2 * i for i in items]


async def test_calls_made_together_share_one_batch_and_keep_their_answers() -> None:
    send = Recorder()
    coalescer: Coalescer[int, int] = Coalescer(send, max_batch=100)

    answers = await asyncio.gather(*(coalescer.submit(i) for i in range(10)))

    assert answers == [2 * i for i in range(10)]
    assert send.batches == [list(range(10))]


async def test_an_items_error_goes_to_its_caller_only() -> None:
    coalescer: Coalescer[int, int] = Coalescer(Recorder())
    answers = await asyncio.gather(
        coalescer.submit(1), coalescer.submit(-1), coalescer.submit(3), return_exceptions=True
    )
    assert answers[0] == 2 and answers[2] == 6
    assert isinstance(answers[1], ValueError)


async def test_batches_are_cut_to_size_and_bounded_in_flight() -> None:
    send = Recorder(delay=0.01)
    coalescer: Coalescer[int, int] = Coalescer(send, max_batch=3, max_batches_in_flight=2)

    answers = await asyncio.gather(*(coalescer.submit(i) for i in range(10)))

    assert answers == [2 * i for i in range(10)]
    assert [len(b) for b in send.batches] == [3, 3, 3, 1]
    assert sorted(i for b in send.batches for i in b) == list(range(10))
    assert send.most_in_flight == 2


async def test_calls_arriving_while_a_batch_is_out_wait_and_go_together() -> None:
    send = Recorder(delay=0.02)
    coalescer: Coalescer[int, int] = Coalescer(send, max_batch=100, max_batches_in_flight=1)

    first = asyncio.ensure_future(coalescer.submit(0))
    await asyncio.sleep(0.005)  # the first batch is out now
    later = [asyncio.ensure_future(coalescer.submit(i)) for i in range(1, 6)]
    await asyncio.gather(first, *later)

    assert send.batches == [[0], [1, 2, 3, 4, 5]]


async def test_a_failed_batch_fails_each_of_its_callers() -> None:
    async def broken(items: list[int]) -> Sequence[int | BaseException]:
        raise ConnectionError("service down")

    coalescer: Coalescer[int, int] = Coalescer(broken)
    answers = await asyncio.gather(*(coalescer.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(a, ConnectionError) for a in answers)


async def test_a_wrong_number_of_answers_is_an_error_not_a_misdelivery() -> None:
    async def short(items: list[int]) -> Sequence[int | BaseException]:
        return items[:-1]

    coalescer: Coalescer[int, int] = Coalescer(short)
    with pytest.raises(RuntimeError, match="answers to a batch of 2"):
        await asyncio.gather(coalescer.submit(1), coalescer.submit(2))


async def test_a_caller_that_gives_up_does_not_break_the_batch() -> None:
    send = Recorder(delay=0.02)
    coalescer: Coalescer[int, int] = Coalescer(send)
    impatient = asyncio.ensure_future(asyncio.wait_for(coalescer.submit(1), 0.001))
    patient = asyncio.ensure_future(coalescer.submit(2))
    with pytest.raises(TimeoutError):
        await impatient
    assert await patient == 4


async def test_callers_of_a_batch_cancelled_in_flight_do_not_hang() -> None:
    started = asyncio.Event()

    async def never(items: list[int]) -> Sequence[int | BaseException]:
        started.set()
        await asyncio.sleep(3600)
        return items

    coalescer: Coalescer[int, int] = Coalescer(never)
    caller = asyncio.ensure_future(coalescer.submit(1))
    await started.wait()
    for task in list(coalescer._tasks):  # what a shutdown does to the batch in flight
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(caller, 1)
