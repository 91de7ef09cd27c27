"""The tools' topic reader and producer against the real Kafka broker: reading from a moment on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from uuid import uuid4

import pytest
from confluent_kafka import Message

from foodflow.platform.config import Settings
from foodflow.platform.kafka.admin import delete_topics, ensure_topics, wait_for_kafka
from foodflow.tools.kafka_io import TopicReader, publish, read_since, tool_producer

pytestmark = pytest.mark.integration


@pytest.fixture
def topic(settings: Settings) -> Iterator[str]:
    """A new topic of three partitions, deleted after the test."""
    wait_for_kafka(settings.kafka_bootstrap, 60.0)
    name = f"test-{uuid4().hex[:8]}"
    ensure_topics(settings.kafka_bootstrap, 3, [name])
    yield name
    delete_topics(settings.kafka_bootstrap, [name])


def produce(settings: Settings, topic: str, partition: int, *values: str) -> None:
    producer = tool_producer(settings)
    for value in values:
        producer.produce(topic, value.encode(), partition=partition)
    assert producer.flush(30) == 0


def now_ms() -> int:
    return int(time.time() * 1000)


def texts(messages: list[Message]) -> list[str]:
    return sorted((m.value() or b"").decode() for m in messages)


def test_reads_every_partition_from_the_moment_on(settings: Settings, topic: str) -> None:
    produce(settings, topic, 0, "old-0a", "old-0b")
    produce(settings, topic, 1, "old-1")
    time.sleep(0.05)  # message timestamps are in ms: keep "old" strictly before the moment
    since = now_ms()
    produce(settings, topic, 0, "new-0")
    produce(settings, topic, 2, "new-2a", "new-2b")

    with TopicReader(settings, topic, since) as reader:
        # Partition 1 has nothing since the moment: it starts at its end.
        assert reader.starts == {0: 2, 1: 1, 2: 0}
        assert reader.ends == {0: 3, 1: 1, 2: 2}
        assert texts(reader.read_to_end(within=20)) == ["new-0", "new-2a", "new-2b"]

    assert texts(read_since(settings, topic, since)) == ["new-0", "new-2a", "new-2b"]


def test_a_partition_with_nothing_since_starts_at_its_end_as_read_before(
    settings: Settings, topic: str
) -> None:
    """What `order follow` needs: an event appended after the reader asked by time, but before
    its first fetch, is read (not skipped by starting at the end as of that fetch)."""
    produce(settings, topic, 1, "before")
    time.sleep(0.05)
    with TopicReader(settings, topic, now_ms()) as reader:
        assert reader.starts[1] == reader.ends[1] == 1
        produce(settings, topic, 1, "meanwhile")
        seen: list[Message] = []
        deadline = time.monotonic() + 20
        while not seen and time.monotonic() < deadline:
            seen = reader.consume(10, 0.5)
    assert texts(seen) == ["meanwhile"]


def test_from_now_reads_only_what_comes_after(settings: Settings, topic: str) -> None:
    produce(settings, topic, 0, "earlier")
    with TopicReader(settings, topic, since_ms=None) as reader:
        assert reader.starts == reader.ends == {0: 1, 1: 0, 2: 0}
        assert reader.read_to_end(within=1) == []
        partition, offset = publish(settings, topic, b"later", key="k")
        msg = None
        deadline = time.monotonic() + 20
        while msg is None and time.monotonic() < deadline:
            msg = reader.poll(0.5)
    assert msg is not None
    assert (msg.value(), msg.key(), msg.partition(), msg.offset()) == (
        b"later",
        b"k",
        partition,
        offset,
    )
