"""Where the tools' topic reader starts each partition, and when it has read to the end."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from foodflow.platform.config import Settings
from foodflow.tools import kafka_io

TOPIC = "order_status_updates"


class FakeMessage:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def error(self) -> None:
        return None

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


class FakeConsumer:
    """Three partitions; partition 0 has messages since the moment asked for, 1 and 2 not.
    A message lands on partition 1 while the reader asks by time (the race `follow` met)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.high = {0: 10, 1: 4, 2: 0}
        self.assigned: list[TopicPartition] = []
        self.queue: list[FakeMessage] = []
        self.closed = False

    def list_topics(self, topic: str, timeout: float) -> Any:
        partitions = {p: object() for p in self.high}
        return type("Meta", (), {"topics": {topic: type("T", (), {"partitions": partitions})}})

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        return 0, self.high[tp.partition]

    def offsets_for_times(self, parts: list[TopicPartition], timeout: float) -> list[Any]:
        self.high[1] += 1
        found = {0: 7}
        return [TopicPartition(tp.topic, tp.partition, found.get(tp.partition, -1)) for tp in parts]

    def assign(self, parts: list[TopicPartition]) -> None:
        self.assigned = parts
        self.queue = [
            FakeMessage(tp.partition, offset)
            for tp in parts
            for offset in range(tp.offset, self.high[tp.partition])
        ]

    def consume(self, most: int, timeout: float) -> list[FakeMessage]:
        taken, self.queue = self.queue[:most], self.queue[most:]
        return taken

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> list[FakeConsumer]:
    made: list[FakeConsumer] = []

    def build(config: dict[str, Any]) -> FakeConsumer:
        made.append(FakeConsumer(config))
        return made[-1]

    monkeypatch.setattr(kafka_io, "Consumer", build)
    return made


def test_a_partition_with_nothing_since_starts_at_its_end_read_before_asking(
    fake: list[FakeConsumer],
) -> None:
    with kafka_io.TopicReader(Settings(), TOPIC, since_ms=1_000, group="cli") as reader:
        assert reader.starts == {0: 7, 1: 4, 2: 0}
        assert [(tp.partition, tp.offset) for tp in fake[0].assigned] == [(0, 7), (1, 4), (2, 0)]
        # The message that landed while asking is read; the ends stay those read first.
        got = [(m.partition(), m.offset()) for m in reader.consume(100, 0)]
        assert got == [(0, 7), (0, 8), (0, 9), (1, 4)]
    assert fake[0].closed
    assert fake[0].config["group.id"].startswith("cli-")


def test_from_now_starts_at_the_ends_without_asking_by_time(fake: list[FakeConsumer]) -> None:
    with kafka_io.TopicReader(Settings(), TOPIC, since_ms=None) as reader:
        assert reader.starts == reader.ends == {0: 10, 1: 4, 2: 0}


def test_read_to_end_stops_at_the_ends_it_started_with(fake: list[FakeConsumer]) -> None:
    started = time.monotonic()
    got = kafka_io.read_since(Settings(), TOPIC, 1_000)
    # Done as soon as partition 0 reached its end: nothing is awaited on partitions 1 and 2
    # (the late message on 1 came along in the same fetch).
    assert time.monotonic() - started < 1
    assert [(m.partition(), m.offset()) for m in got] == [(0, 7), (0, 8), (0, 9), (1, 4)]
