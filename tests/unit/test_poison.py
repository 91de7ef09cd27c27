"""Isolating the message a batch fails on, triage of outages, and one dead letter per message."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, cast

import asyncpg
import pytest
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition
from redis.exceptions import ConnectionError as RedisConnectionError

from foodflow.platform.errors import PublishError, ServiceUnavailable
from foodflow.platform.kafka.dlq import DeadLetterPublisher
from foodflow.platform.kafka.poison import MAX_REASON_CHARS, PoisonIsolator, is_outage, reason_for
from foodflow.platform.kafka.producer import EventProducer


class FakeMessage:
    def __init__(self, offset: int, value: bytes = b"ok", partition: int = 0) -> None:
        self._offset, self._value, self._partition = offset, value, partition

    def value(self) -> bytes:
        return self._value

    def topic(self) -> str:
        return "orders-in"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


def batch_of(count: int, poison: Collection[int] = ()) -> list[Message]:
    return [
        cast(Message, FakeMessage(i, b"poison" if i in poison else b"ok", partition=i % 3))
        for i in range(count)
    ]


class Handler:
    """Fails a batch that holds a poison message; records what it handled."""

    def __init__(self, error: Exception | None = None, transient: dict[int, int] | None = None):
        self.error = error or ValueError("cannot read it")
        self.transient = transient or {}  # offset -> failures left before it succeeds
        self.handled: list[int] = []
        self.calls: list[list[int]] = []

    async def __call__(self, batch: list[Message]) -> None:
        offsets = [msg.offset() or 0 for msg in batch]
        self.calls.append(offsets)
        for msg in batch:
            left = self.transient.get(msg.offset() or 0, 0)
            if left:
                self.transient[msg.offset() or 0] = left - 1
                raise self.error
        if any(msg.value() == b"poison" for msg in batch):
            raise self.error
        self.handled.extend(offsets)


class Sink:
    def __init__(self) -> None:
        self.parked: list[tuple[int, str]] = []

    async def __call__(self, msg: Message, reason: str) -> None:
        self.parked.append((msg.offset() or 0, reason))


def isolator(handler: Handler, sink: Sink, attempts: int = 3) -> PoisonIsolator:
    return PoisonIsolator(handler, sink, attempts=attempts, group="g")


async def test_a_batch_that_succeeds_is_handled_once() -> None:
    handler, sink = Handler(), Sink()
    await isolator(handler, sink)(batch_of(8))
    assert handler.calls == [list(range(8))]
    assert sink.parked == []


async def test_the_one_bad_message_is_parked_after_its_attempts_and_the_rest_handled() -> None:
    handler, sink = Handler(), Sink()
    await isolator(handler, sink, attempts=3)(batch_of(100, poison={37}))
    assert [offset for offset, _ in sink.parked] == [37]
    assert sorted(handler.handled) == [i for i in range(100) if i != 37]
    assert handler.calls.count([37]) == 3  # tried alone three times, then parked
    # Bisection: each level splits the failing half, so ~2 calls per level (log2 100 = 7).
    assert len(handler.calls) <= 1 + 2 * 7 + 2
    assert "ValueError: cannot read it" in sink.parked[0][1]


async def test_several_bad_messages_are_each_parked_once() -> None:
    handler, sink = Handler(), Sink()
    await isolator(handler, sink, attempts=2)(batch_of(50, poison={0, 21, 22, 49}))
    assert sorted(offset for offset, _ in sink.parked) == [0, 21, 22, 49]
    assert sorted(handler.handled) == [i for i in range(50) if i not in {0, 21, 22, 49}]


@pytest.mark.parametrize("size", [1, 9])
async def test_a_message_that_fails_twice_then_succeeds_is_not_parked(size: int) -> None:
    handler, sink = Handler(transient={size - 1: 2}), Sink()
    await isolator(handler, sink, attempts=3)(batch_of(size))
    assert sink.parked == []
    assert sorted(handler.handled) == list(range(size))


async def test_an_outage_is_raised_whole_and_never_bisected() -> None:
    handler, sink = Handler(error=ServiceUnavailable("inventory down")), Sink()
    with pytest.raises(ServiceUnavailable):
        await isolator(handler, sink)(batch_of(10, poison={3}))
    assert handler.calls == [list(range(10))]
    assert sink.parked == []


async def test_an_outage_during_isolation_stops_it_and_is_raised() -> None:
    sink = Sink()
    failures = iter([ValueError("bad"), RedisConnectionError("redis gone")])

    async def first_bad_then_down(batch: list[Message]) -> None:
        raise next(failures)

    with pytest.raises(RedisConnectionError):
        await PoisonIsolator(first_bad_then_down, sink, attempts=3, group="g")(batch_of(4))
    assert sink.parked == []


def kafka_exception(code: int) -> KafkaException:
    return KafkaException(KafkaError(code))


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (ServiceUnavailable("pricing: HTTP 503"), True),
        (type("PostgresDown", (ServiceUnavailable,), {})("postgres"), True),
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (RedisConnectionError("gone"), True),
        (asyncpg.CannotConnectNowError("starting up"), True),
        (asyncpg.InterfaceError("pool is closing"), True),
        (asyncpg.exceptions._base.DataError("invalid input for query argument $1"), False),
        (PublishError("delivery timed out"), True),
        (PublishError("message too large", refused=True), False),
        (kafka_exception(KafkaError._TRANSPORT), True),
        (kafka_exception(KafkaError._MSG_TIMED_OUT), True),
        (kafka_exception(KafkaError.MSG_SIZE_TOO_LARGE), False),
        (ValueError("bad data"), False),
        (KeyError("x"), False),
        (asyncpg.CharacterNotInRepertoireError("invalid byte sequence"), False),
    ],
)
def test_outages_are_told_from_bad_messages(error: Exception, outage: bool) -> None:
    assert is_outage(error) is outage


def test_an_error_raised_from_an_outage_is_an_outage() -> None:
    try:
        try:
            raise ServiceUnavailable("payment down")
        except ServiceUnavailable as cause:
            raise RuntimeError("order failed") from cause
    except RuntimeError as exc:
        assert is_outage(exc)


def test_the_reason_names_the_error_and_is_bounded() -> None:
    reason = reason_for(ValueError("x" * 10_000), 3, "order_writer")
    assert reason.startswith("failed 3 time(s) alone in consumer group order_writer: ValueError: x")
    assert len(reason) <= MAX_REASON_CHARS + 1


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, str | None]] = []

    async def publish(self, topic: str, value: Any, key: str | None = None) -> None:
        self.sent.append((topic, value, key))


async def test_a_letter_is_published_once_per_source_until_committed_past() -> None:
    producer = Producer()
    letters = DeadLetterPublisher(cast(EventProducer, producer), "dead")
    bad, other = cast(Message, FakeMessage(7)), cast(Message, FakeMessage(7, partition=1))
    assert await letters.publish(bad, "bad")
    assert not await letters.publish(bad, "bad again")  # a retried batch
    await letters.park(bad, "failed alone")
    assert await letters.publish(other, "same offset, other partition")
    assert len(producer.sent) == 2

    letters.committed([TopicPartition("orders-in", 0, 7)])  # not past it yet
    assert not await letters.publish(bad, "bad")
    letters.committed([TopicPartition("orders-in", 0, 8)])
    assert await letters.publish(bad, "read again only after an offset reset")
    assert [topic for topic, _, _ in producer.sent] == ["dead"] * 3
