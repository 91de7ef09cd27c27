"""A dead letter always fits in a Kafka message, whatever it parks."""

from __future__ import annotations

import hashlib
from typing import cast

from confluent_kafka import Message

from foodflow.contracts.orders import DeadLetter
from foodflow.platform.kafka.dlq import MAX_ERROR_CHARS, MAX_PAYLOAD_BYTES, dead_letter_for

KAFKA_MESSAGE_LIMIT = 1_000_000


class Parked:
    def __init__(self, value: bytes) -> None:
        self._value = value

    def value(self) -> bytes:
        return self._value

    def topic(self) -> str:
        return "validated_orders"

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return 41


def letter_of(raw: bytes, error: str = "invalid order") -> DeadLetter:
    return dead_letter_for(cast(Message, Parked(raw)), error)


def test_a_small_payload_is_parked_whole() -> None:
    letter = letter_of(b'{"user_id": "u"}')
    assert (letter.payload, letter.payload_truncated) == ('{"user_id": "u"}', False)
    assert (letter.payload_bytes, letter.payload_sha256) == (16, None)


def test_the_worst_payloads_are_cut_to_fit_with_their_size_and_hash() -> None:
    # NUL bytes escape to six characters each in JSON text; invalid UTF-8 to three bytes.
    for raw in (b"\x00" * 150_000, b"\xff" * 999_000, b'{"note": "' + b"x" * 900_000 + b'"}'):
        letter = letter_of(raw, error="e" * 100_000)
        assert letter.payload_truncated and letter.payload_bytes == len(raw)
        assert letter.payload_sha256 == hashlib.sha256(raw).hexdigest()
        assert len(letter.payload_base64 or "") <= 4 * MAX_PAYLOAD_BYTES // 3 + 4
        assert len(letter.error) == MAX_ERROR_CHARS + 1
        assert len(letter.model_dump_json().encode()) < KAFKA_MESSAGE_LIMIT
