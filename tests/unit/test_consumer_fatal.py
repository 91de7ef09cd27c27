"""A fatal error of the Kafka consumer client is told apart from the others: the client must be
replaced (`BatchConsumer._renew`), where other errors are only logged. librdkafka reports a
fatal error (a static member fenced when its group coordinator died, as a cluster chaos run
met) as an event with code _FATAL; before, that event was logged as a warning and the client,
unusable, never consumed again."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from foodflow.platform.kafka.consumer import FatalConsumerError, _is_error


class Event:
    """What `consume()` hands back for an error: a message whose error() is set."""

    def __init__(self, error: KafkaError | None) -> None:
        self._error = error

    def error(self) -> KafkaError | None:
        return self._error

    def topic(self) -> str:
        return "validated_orders"

    def partition(self) -> int:
        return 0


def test_a_fatal_event_asks_for_a_new_client() -> None:
    with pytest.raises(FatalConsumerError):
        _is_error(Event(KafkaError(KafkaError._FATAL)))  # type: ignore[arg-type]


def test_a_fatal_flagged_error_asks_for_a_new_client() -> None:
    with pytest.raises(FatalConsumerError):
        _is_error(Event(KafkaError(KafkaError.FENCED_INSTANCE_ID, fatal=True)))  # type: ignore[arg-type]


def test_other_errors_are_skipped_and_messages_kept() -> None:
    assert _is_error(Event(KafkaError(KafkaError._TRANSPORT))) is True  # type: ignore[arg-type]
    assert _is_error(Event(KafkaError(KafkaError._PARTITION_EOF))) is True  # type: ignore[arg-type]
    assert _is_error(Event(None)) is False  # type: ignore[arg-type]
