"""EventProducer, BatchConsumer, dead letters and topic admin against the real Kafka broker."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import uuid4

import pytest
from confluent_kafka import Message
from pydantic import BaseModel

from foodflow.contracts.orders import DeadLetter
from foodflow.platform.config import Settings
from foodflow.platform.errors import PublishError, ServiceUnavailable
from foodflow.platform.kafka.admin import delete_topics, ensure_topics, wait_for_kafka
from foodflow.platform.kafka.consumer import BatchConsumer
from foodflow.platform.kafka.dlq import send_to_dead_letter
from foodflow.platform.kafka.producer import EventProducer

pytestmark = pytest.mark.integration

TopicFactory = Callable[..., Awaitable[str]]


class Ping(BaseModel):
    n: int
    note: str = "ping"


@pytest.fixture(scope="module")
async def kafka(settings: Settings) -> str:
    await asyncio.to_thread(wait_for_kafka, settings.kafka_bootstrap, 60.0)
    return settings.kafka_bootstrap


@pytest.fixture
async def new_topic(kafka: str) -> AsyncIterator[TopicFactory]:
    """Create uniquely named topics (`test-<hex>`), deleted after the test."""
    created: list[str] = []

    async def make(partitions: int = 3) -> str:
        name = f"test-{uuid4().hex[:8]}"
        await asyncio.to_thread(ensure_topics, kafka, partitions, [name])
        created.append(name)
        return name

    yield make
    with contextlib.suppress(Exception):  # leftovers are harmless: the names are random
        await asyncio.to_thread(delete_topics, kafka, created)


@pytest.fixture
async def producer(settings: Settings, kafka: str) -> AsyncIterator[EventProducer]:
    async with EventProducer(settings) as producer:
        yield producer


class Collector:
    """A handle_batch that records what it saw and can fail on purpose (as if a dependency
    were down: the batch is handed back whole)."""

    def __init__(self, fail_times: int = 0) -> None:
        self.messages: list[Message] = []
        self.sizes: list[int] = []
        self.calls = 0
        self.fail_times = fail_times

    async def __call__(self, batch: list[Message]) -> None:
        self.calls += 1
        if self.fail_times > 0:
            self.fail_times -= 1
            raise ServiceUnavailable("handler failure on purpose")
        self.sizes.append(len(batch))
        self.messages.extend(batch)

    def values(self) -> list[int]:
        return sorted(Ping.model_validate_json(m.value() or b"").n for m in self.messages)


async def consume_until(
    settings: Settings,
    topic: str,
    group_id: str,
    collector: Collector,
    count: int,
    *,
    linger: float = 0.0,
    within: float = 45.0,
    batch_size: int = 100,
) -> None:
    """Run a BatchConsumer until `collector` has `count` messages (then `linger` more seconds)."""
    consumer = BatchConsumer(
        settings, [topic], group_id, collector, batch_size=batch_size, poll_timeout=0.2
    )
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(within):
            while len(collector.messages) < count:
                assert not task.done(), task.exception()
                await asyncio.sleep(0.05)
        await asyncio.sleep(linger)
    finally:
        await consumer.stop()
        await task
    await consumer.stop()  # a second stop is harmless


async def test_publish_waits_for_the_ack_and_batch_consumer_reads_it_all(
    settings: Settings, producer: EventProducer, new_topic: TopicFactory
) -> None:
    topic = await new_topic()
    await producer.publish(topic, Ping(n=0), key="k-0")
    futures = [producer.publish_nowait(topic, Ping(n=i), key=f"k-{i}") for i in range(1, 50)]
    futures.append(producer.publish_nowait(topic, b'{"n": 50, "note": "raw bytes"}'))
    await asyncio.gather(*futures)
    assert await producer.flush(5) == 0

    collector = Collector()
    await consume_until(settings, topic, f"g-{uuid4().hex[:8]}", collector, 51, batch_size=20)
    assert collector.values() == list(range(51))
    assert max(collector.sizes) <= 20
    keyed = {m.key() for m in collector.messages}
    assert b"k-7" in keyed and None in keyed


async def test_committed_offsets_are_not_reread_by_the_group_but_are_by_a_new_group(
    settings: Settings, producer: EventProducer, new_topic: TopicFactory
) -> None:
    topic = await new_topic()
    group = f"g-{uuid4().hex[:8]}"
    await asyncio.gather(*(producer.publish(topic, Ping(n=i), key=str(i)) for i in range(10)))

    first = Collector()
    await consume_until(settings, topic, group, first, 10)
    assert first.values() == list(range(10))

    await asyncio.gather(*(producer.publish(topic, Ping(n=i), key=str(i)) for i in range(10, 15)))
    # Same group, new member: only what arrived after the commit (linger to catch re-reads).
    second = Collector()
    await consume_until(settings, topic, group, second, 5, linger=2.0)
    assert second.values() == list(range(10, 15))

    # A new group starts from the earliest offset and sees everything.
    fresh = Collector()
    await consume_until(settings, topic, f"g-{uuid4().hex[:8]}", fresh, 15)
    assert fresh.values() == list(range(15))


async def test_a_failing_batch_is_not_committed_and_is_retried(
    settings: Settings, producer: EventProducer, new_topic: TopicFactory
) -> None:
    topic = await new_topic(partitions=1)
    group = f"g-{uuid4().hex[:8]}"
    await asyncio.gather(*(producer.publish(topic, Ping(n=i)) for i in range(5)))

    flaky = Collector(fail_times=1)
    await consume_until(settings, topic, group, flaky, 5)
    assert flaky.calls >= 2
    assert flaky.values() == list(range(5))  # redelivered after the failure, each once

    await producer.publish(topic, Ping(n=99))
    again = Collector()
    await consume_until(settings, topic, group, again, 1, linger=1.0)
    assert again.values() == [99]  # the retried batch was committed


async def test_consumer_stops_cleanly_without_run_and_reports_assignment(
    settings: Settings, new_topic: TopicFactory
) -> None:
    topic = await new_topic()
    async with BatchConsumer(settings, [topic], f"g-{uuid4().hex[:8]}", Collector()) as consumer:
        assert not consumer.running
        assert await consumer.lag() == {}
    await consumer.stop()


async def test_publish_failure_raises_publish_error(
    settings: Settings, producer: EventProducer, new_topic: TopicFactory
) -> None:
    topic = await new_topic(partitions=1)
    with pytest.raises(PublishError):
        await producer.publish(topic, b"x" * 2_000_000)  # over message.max.bytes
    stopped = EventProducer(settings)
    with pytest.raises(PublishError):
        await stopped.publish(topic, b"not started")
    await stopped.stop()


async def test_dead_letter_carries_payload_origin_and_error(
    settings: Settings, producer: EventProducer, new_topic: TopicFactory
) -> None:
    source, dead = await new_topic(partitions=1), await new_topic(partitions=1)
    raw = b"\xff not json"
    await producer.publish(source, raw)
    seen = Collector()
    await consume_until(settings, source, f"g-{uuid4().hex[:8]}", seen, 1)
    order_id = uuid4()
    await send_to_dead_letter(producer, seen.messages[0], "bad JSON", order_id, topic=dead)

    letters = Collector()
    await consume_until(settings, dead, f"g-{uuid4().hex[:8]}", letters, 1)

    message = letters.messages[0]
    assert message.key() == str(order_id).encode()
    letter = DeadLetter.model_validate_json(message.value() or b"")
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (source, 0, 0)
    assert letter.error == "bad JSON"
    assert letter.order_id == order_id
    assert letter.payload == "\ufffd not json"
    assert base64.b64decode(letter.payload_base64 or "") == raw


async def test_ensure_topics_is_idempotent(kafka: str) -> None:
    name = f"test-{uuid4().hex[:8]}"
    try:
        assert await asyncio.to_thread(ensure_topics, kafka, 2, [name]) == [name]
        assert await asyncio.to_thread(ensure_topics, kafka, 2, [name]) == []
    finally:
        await asyncio.to_thread(delete_topics, kafka, [name])


async def until(condition: Callable[[], bool], within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.05)


async def test_batches_are_read_ahead_but_committed_in_order(
    settings: Settings, producer: EventProducer, new_topic: TopicFactory
) -> None:
    topic = await new_topic(partitions=1)
    group = f"g-{uuid4().hex[:8]}"
    for i in range(6):  # one message per batch: six batches
        await producer.publish(topic, Ping(n=i))
    release_first = asyncio.Event()
    handled: list[int] = []

    async def handle(batch: list[Message]) -> None:
        n = Ping.model_validate_json(batch[0].value() or b"").n
        if n == 0:
            await release_first.wait()  # the oldest batch is slow
        handled.append(n)

    consumer = BatchConsumer(
        settings, [topic], group, handle, batch_size=1, poll_timeout=0.2, max_batches_in_flight=3
    )
    task = asyncio.create_task(consumer.run())
    try:
        await until(lambda: len(handled) >= 2)  # batches 1 and 2 run while 0 is in hand
        assert handled[:2] == [1, 2] and 3 not in handled  # at most three batches in hand
        assert consumer.batches_handled == 0  # nothing committed past the slow batch
        release_first.set()
        await until(lambda: consumer.batches_handled == 6)
    finally:
        release_first.set()
        await consumer.stop()
        await task
    assert sorted(handled) == list(range(6))

    await producer.publish(topic, Ping(n=99))
    again = Collector()
    await consume_until(settings, topic, group, again, 1, linger=1.0)
    assert again.values() == [99]  # all six were committed
