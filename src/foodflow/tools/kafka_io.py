"""Kafka for the tools: read a topic from a moment on, and publish raw bytes.

Blocking clients for the command line and the bench's and chaos's threads (from async code wrap
the calls in `asyncio.to_thread`); the services use `EventProducer` and `BatchConsumer`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from foodflow.platform.config import Settings
from foodflow.platform.errors import PublishError
from foodflow.platform.kafka.producer import refuses_message
from foodflow.tools.cli_errors import QUIET, kafka_reason


def tool_producer(settings: Settings, config: Mapping[str, Any] | None = None) -> Producer:
    """A raw producer: idempotent (so acks=all, and no duplicates when librdkafka retries),
    with `config` (librdkafka settings: linger, compression, a logger…) on top."""
    base = {"bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True}
    return Producer({**base, **(config or {})})


def publish(
    settings: Settings,
    topic: str,
    value: bytes,
    key: str | None = None,
    *,
    timeout: float = 30.0,
) -> tuple[int, int]:
    """Publish one message and wait for the broker's answer; returns its (partition, offset).

    PublishError if it was refused or not acknowledged within `timeout` seconds: the
    producer's own delivery timeout is `timeout` too, so that a broker that is down is
    reported as such (librdkafka's error) rather than as a message still in flight.
    """
    where: list[tuple[int, int]] = []
    errors: list[object] = []

    def delivered(err: object, msg: Message) -> None:
        if err is not None:
            errors.append(err)
        else:
            where.append((msg.partition() or 0, msg.offset() or 0))

    producer = tool_producer(
        settings, {"message.timeout.ms": max(1, int(timeout * 1000)), "logger": QUIET}
    )
    try:
        producer.produce(topic, value=value, key=key, on_delivery=delivered)
    except KafkaException as exc:  # refused before it left: too large, an unknown topic…
        raise PublishError(kafka_reason(exc), refused=refuses_message(exc.args[0])) from exc
    producer.flush(timeout + 1.0)  # the delivery report of a timed-out message comes after
    if errors:
        raise PublishError(kafka_reason(errors[0]), refused=refuses_message(errors[0]))
    if not where:
        raise PublishError(f"no delivery report within {timeout:g}s")
    return where[0]


class TopicReader:
    """Reads every partition of `topic` from the moment `since_ms` (epoch ms) on, or from now
    when it is None; a context manager (`close()` on exit).

    A partition starts at its first message stamped at or after `since_ms`; one with nothing
    since then starts at its end as read *before* asking by time, so a message appended
    meanwhile is still read (starting at "the end as of the first fetch" missed the first
    events of an order sent just before). `ends` holds those ends: `read_to_end()` stops there.

    `poll()` and `consume()` skip error events; a hot loop may call `consumer.poll` directly.
    """

    def __init__(
        self,
        settings: Settings,
        topic: str,
        since_ms: int | None,
        *,
        group: str = "foodflow-tool",
        timeout: float = 10.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.topic = topic
        config: dict[str, Any] = {
            "bootstrap.servers": settings.kafka_bootstrap,
            # Partitions are assigned, never subscribed: the group only names the client.
            "group.id": f"{group}-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
        if logger is not None:
            config["logger"] = logger
        self.consumer = Consumer(config)
        try:
            self.ends, self.starts = _start_offsets(self.consumer, topic, since_ms, timeout)
            self.consumer.assign([TopicPartition(topic, p, o) for p, o in self.starts.items()])
        except BaseException:
            self.consumer.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def poll(self, timeout: float) -> Message | None:
        """The next message, or None if none came within `timeout` seconds."""
        msg = self.consumer.poll(timeout)
        return msg if msg is not None and msg.error() is None else None

    def consume(self, most: int, timeout: float) -> list[Message]:
        """Up to `most` messages, waiting at most `timeout` seconds for them."""
        return [m for m in self.consumer.consume(most, timeout) if m.error() is None]

    def read_to_end(self, within: float = 60.0) -> list[Message]:
        """Every message from the start up to `ends`, or what came within `within` seconds."""
        todo = {p for p, start in self.starts.items() if start < self.ends[p]}
        out: list[Message] = []
        deadline = time.monotonic() + within
        while todo and time.monotonic() < deadline:
            for msg in self.consume(5000, 0.5):
                out.append(msg)
                partition = msg.partition() or 0
                if (msg.offset() or 0) + 1 >= self.ends[partition]:
                    todo.discard(partition)
        return out

    def close(self) -> None:
        """Close the consumer. Safe to call twice."""
        self.consumer.close()


def _start_offsets(
    consumer: Consumer, topic: str, since_ms: int | None, timeout: float
) -> tuple[dict[int, int], dict[int, int]]:
    """(end, start) offset per partition, the ends read before the starts (see TopicReader)."""
    meta = consumer.list_topics(topic, timeout=timeout)
    numbers = sorted(meta.topics[topic].partitions)
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
        for p in numbers
    }
    if since_ms is None:
        return ends, dict(ends)
    found = consumer.offsets_for_times(
        [TopicPartition(topic, p, since_ms) for p in numbers], timeout=timeout
    )
    return ends, {tp.partition: tp.offset if tp.offset >= 0 else ends[tp.partition] for tp in found}


def read_at(
    settings: Settings, topic: str, partition: int, offset: int, *, timeout: float = 10.0
) -> bytes | None:
    """The value of the message at `offset` of `topic`[`partition`]; None when it is gone
    (past the topic's retention) or did not come within `timeout` seconds."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"foodflow-tool-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            # An offset no longer kept is answered with the first one still there, not an error.
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = consumer.poll(left)
            if msg is None or msg.error() is not None:
                continue
            return msg.value() if msg.offset() == offset else None
        return None
    finally:
        consumer.close()


def read_since(
    settings: Settings,
    topic: str,
    since_ms: int,
    *,
    group: str = "foodflow-tool",
    timeout: float = 10.0,
    logger: logging.Logger | None = None,
) -> list[Message]:
    """Every message of `topic` from `since_ms` to its end as of the call."""
    with TopicReader(settings, topic, since_ms, group=group, timeout=timeout, logger=logger) as r:
        return r.read_to_end()
