"""`foodflow dlq`: letters collapse by their source, and a cut letter names its original."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from typing import cast

from confluent_kafka import Message

from foodflow.contracts.orders import DeadLetter
from foodflow.tools.chaos.runner import dead_letter_source
from foodflow.tools.dead_letters import collapse, matches

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def letter(offset: int, minutes: int, topic: str = "validated_orders") -> DeadLetter:
    return DeadLetter(
        source_topic=topic,
        source_partition=1,
        source_offset=offset,
        error="bad",
        payload="x",
        failed_at=T0 + timedelta(minutes=minutes),
    )


def test_letters_naming_the_same_source_are_one_dead_message() -> None:
    # A crash between a letter and its commit repeats it; another topic's offset 5 is another.
    parked = collapse(
        [
            (0, 10, letter(5, minutes=2)),
            (2, 11, letter(5, minutes=1)),
            (1, 3, letter(6, minutes=3)),
            (0, 12, letter(5, minutes=4, topic="db_write_order_status")),
            (1, 4, letter(5, minutes=5)),
        ]
    )
    assert [(p.ref, p.source, p.copies) for p in parked] == [
        ("2:11", "validated_orders/1@5", 3),  # the oldest letter stands for the others
        ("1:3", "validated_orders/1@6", 1),
        ("0:12", "db_write_order_status/1@5", 1),
    ]


def test_the_original_is_recognised_by_its_hash_or_its_bytes() -> None:
    raw = b"\x00" * 100_000
    cut = DeadLetter(
        source_topic="t",
        source_partition=0,
        source_offset=0,
        error="too big",
        payload="",
        payload_truncated=True,
        payload_bytes=len(raw),
        payload_sha256=hashlib.sha256(raw).hexdigest(),
    )
    assert matches(cut, raw) and not matches(cut, raw[:-1])
    whole = cut.model_copy(
        update={"payload_sha256": None, "payload_base64": base64.b64encode(b"abc").decode()}
    )
    assert matches(whole, b"abc") and not matches(whole, b"abd")


class Letter:
    def __init__(self, value: bytes) -> None:
        self._value = value

    def value(self) -> bytes:
        return self._value

    def topic(self) -> str:
        return "dead_letter_orders"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 9


def test_chaos_counts_a_repeated_letter_once() -> None:
    repeated = [Letter(letter(5, minutes=m).model_dump_json().encode()) for m in (1, 2)]
    sources = {dead_letter_source(cast(Message, one)) for one in repeated}
    assert sources == {("validated_orders", 1, 5)}
    assert dead_letter_source(cast(Message, Letter(b"not a letter"))) == (
        "dead_letter_orders",
        0,
        9,
    )
