"""A message a handler always fails on is dead-lettered exactly once and the rest flows, against
the real Kafka broker: unique topics and consumer groups per test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from uuid import uuid4

import pytest
from confluent_kafka import Message, TopicPartition

from foodflow.contracts.orders import DeadLetter
from foodflow.platform.config import Settings
from foodflow.platform.errors import ServiceUnavailable
from foodflow.platform.kafka.admin import delete_topics, ensure_topics, wait_for_kafka
from foodflow.platform.kafka.consumer import BatchConsumer, BatchHandler
from foodflow.platform.kafka.dlq import DeadLetterPublisher, source_of
from foodflow.platform.kafka.producer import EventProducer
from foodflow.tools.kafka_io import read_since

pytestmark = pytest.mark.integration

POISON = b"poison"


@pytest.fixture
async def new_topic(settings: Settings) -> AsyncIterator[Callable[[int], Awaitable[str]]]:
    await asyncio.to_thread(wait_for_kafka, settings.kafka_bootstrap, 60.0)
    created: list[str] = []

    async def make(partitions: int) -> str:
        name = f"test-{uuid4().hex[:8]}"
        await asyncio.to_thread(ensure_topics, settings.kafka_bootstrap, partitions, [name])
        created.append(name)
        return name

    yield make
    with contextlib.suppress(Exception):  # leftovers are harmless: the names are random
        await asyncio.to_thread(delete_topics, settings.kafka_bootstrap, created)


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[EventProducer]:
    async with EventProducer(settings) as producer:
        yield producer


async def consume(
    settings: Settings,
    topic: str,
    group: str,
    handle: BatchHandler,
    dead_letters: DeadLetterPublisher,
    done: Callable[[BatchConsumer], bool],
    *,
    within: float = 20.0,
) -> None:
    """Run a consumer until `done(consumer)`, then stop it (which commits what it handled)."""
    consumer = BatchConsumer(
        settings,
        [topic],
        group,
        handle,
        batch_size=100,
        poll_timeout=0.2,
        dead_letter=dead_letters,
        poison_attempts=3,
    )
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(within):
            while not done(consumer):
                assert not task.done(), task.exception()
                await asyncio.sleep(0.05)
    finally:
        await consumer.stop()
        await task


def letters_on(settings: Settings, topic: str) -> list[DeadLetter]:
    return [
        DeadLetter.model_validate_json(m.value() or b"") for m in read_since(settings, topic, 0)
    ]


async def publish_numbers(producer: EventProducer, topic: str, numbers: range) -> None:
    await asyncio.gather(*(producer.publish(topic, str(n).encode(), key=str(n)) for n in numbers))


async def test_a_message_that_always_fails_is_dead_lettered_once_and_the_rest_flows(
    settings: Settings, producer: EventProducer, new_topic: Callable[[int], Awaitable[str]]
) -> None:
    topic, dead = await new_topic(3), await new_topic(1)
    group = f"g-{uuid4().hex[:8]}"
    await publish_numbers(producer, topic, range(20))
    await producer.publish(topic, POISON, key="poison")
    await publish_numbers(producer, topic, range(20, 40))
    handled: set[int] = set()
    poison_at: list[tuple[str, int, int]] = []

    async def handle(batch: list[Message]) -> None:
        for msg in batch:
            if msg.value() == POISON:
                poison_at.append(source_of(msg))
                raise ValueError("cannot handle this one")
        handled.update(int(msg.value() or b"") for msg in batch)

    letters = DeadLetterPublisher(producer, dead)
    # Before this change every partition stopped for good behind the failing batch.
    await consume(
        settings, topic, group, handle, letters, lambda c: c.messages_handled >= 41, within=20
    )
    assert handled == set(range(40))
    [letter] = await asyncio.to_thread(letters_on, settings, dead)
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == poison_at[0]
    assert letter.payload == "poison"
    assert "ValueError: cannot handle this one" in letter.error
    assert poison_at.count(poison_at[0]) >= 3  # tried alone POISON_ATTEMPTS times

    # Committed past the poison on its partition and on the others: the group reads only news.
    await publish_numbers(producer, topic, range(100, 106))
    again: set[int] = set()

    async def collect(batch: list[Message]) -> None:
        again.update(int(msg.value() or b"") for msg in batch)

    await consume(settings, topic, group, collect, letters, lambda c: len(again) >= 6)
    await asyncio.sleep(0.5)
    assert again == set(range(100, 106))
    assert len(await asyncio.to_thread(letters_on, settings, dead)) == 1


async def test_a_message_that_fails_twice_then_succeeds_is_not_dead_lettered(
    settings: Settings, producer: EventProducer, new_topic: Callable[[int], Awaitable[str]]
) -> None:
    topic, dead = await new_topic(3), await new_topic(1)
    await publish_numbers(producer, topic, range(30))
    failures_left = {7: 2}
    handled: set[int] = set()

    async def handle(batch: list[Message]) -> None:
        numbers = [int(msg.value() or b"") for msg in batch]
        for n in numbers:
            if failures_left.get(n):
                failures_left[n] -= 1
                raise RuntimeError("flaky")
        handled.update(numbers)

    letters = DeadLetterPublisher(producer, dead)
    group = f"g-{uuid4().hex[:8]}"
    await consume(settings, topic, group, handle, letters, lambda c: c.messages_handled >= 30)
    assert handled == set(range(30))
    assert failures_left == {7: 0}
    assert await asyncio.to_thread(letters_on, settings, dead) == []


async def test_a_letter_the_handler_sent_is_not_sent_again_when_an_outage_retries_its_batch(
    settings: Settings, producer: EventProducer, new_topic: Callable[[int], Awaitable[str]]
) -> None:
    topic, dead = await new_topic(1), await new_topic(1)
    await publish_numbers(producer, topic, range(5))
    await producer.publish(topic, b"not a number")
    letters = DeadLetterPublisher(producer, dead)
    outages_left = 2
    calls: list[int] = []

    async def handle(batch: list[Message]) -> None:
        nonlocal outages_left
        calls.append(len(batch))
        for msg in batch:
            if not (msg.value() or b"").isdigit():
                await letters.publish(msg, "not a number")
        if outages_left:
            outages_left -= 1
            raise ServiceUnavailable("PostgreSQL unavailable")

    group = f"g-{uuid4().hex[:8]}"
    await consume(settings, topic, group, handle, letters, lambda c: c.messages_handled >= 6)
    assert calls[:3] == [6, 6, 6]  # an outage is retried whole, never bisected
    [letter] = await asyncio.to_thread(letters_on, settings, dead)
    assert letter.payload == "not a number"


async def test_a_parked_message_is_not_handled_again_when_an_outage_hands_its_batch_back(
    settings: Settings, producer: EventProducer, new_topic: Callable[[int], Awaitable[str]]
) -> None:
    topic, dead = await new_topic(1), await new_topic(1)
    await publish_numbers(producer, topic, range(3))
    await producer.publish(topic, POISON)
    await publish_numbers(producer, topic, range(3, 10))
    letters = DeadLetterPublisher(producer, dead)
    parked: list[Message] = []
    after_outage: list[list[bytes]] = []
    handled: set[int] = set()

    class Sink:
        async def park(self, msg: Message, reason: str) -> None:
            await letters.park(msg, reason)
            parked.append(msg)

        def committed(self, offsets: Sequence[TopicPartition]) -> None:
            letters.committed(offsets)

    async def handle(batch: list[Message]) -> None:
        values = [msg.value() or b"" for msg in batch]
        if after_outage:
            after_outage.append(values)
        if POISON in values:
            raise ValueError("cannot handle this one")
        if parked and not after_outage:  # the poison is parked: now PostgreSQL goes away once
            after_outage.append(values)
            raise ServiceUnavailable("PostgreSQL unavailable")
        handled.update(int(v) for v in values)

    consumer = BatchConsumer(
        settings,
        [topic],
        f"g-{uuid4().hex[:8]}",
        handle,
        batch_size=100,
        poll_timeout=0.2,
        dead_letter=Sink(),
        poison_attempts=2,
    )
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(20):
            while consumer.messages_handled < 11:
                assert not task.done(), task.exception()
                await asyncio.sleep(0.05)
    finally:
        await consumer.stop()
        await task
    assert handled == set(range(10))
    assert len(parked) == 1
    assert len(after_outage) >= 2  # the batch was read again after the outage...
    assert all(POISON not in values for values in after_outage)  # ...without the parked one
    assert len(await asyncio.to_thread(letters_on, settings, dead)) == 1
