"""Dead letters: a message that cannot be handled is parked on `topics.DEAD_LETTER` with why.

A letter names its source message by (topic, partition, offset): the whole original stays there,
readable until the topic's retention removes it, however much of it the letter kept. Those
coordinates are also the letter's identity: `DeadLetterPublisher` sends one letter per source
message per process, and readers collapse repeats (a crash between a letter and the commit of
its source offset) by them.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Sequence
from uuid import UUID

from confluent_kafka import Message, TopicPartition

from foodflow.contracts import topics
from foodflow.contracts.orders import DeadLetter
from foodflow.platform.kafka.producer import EventProducer

log = logging.getLogger(__name__)


# What a dead letter keeps of a payload and of an error. A letter is JSON: the payload twice
# (text, where each control byte may become a 6-byte escape, and base64), so 64 KiB of payload
# is at most ~470 KB of letter, well inside the producer's 1,000,000-byte message limit. A
# letter over that limit could never be published, and its batch would be retried for ever.
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_ERROR_CHARS = 4096


def dead_letter_for(msg: Message, error: str, order_id: UUID | None = None) -> DeadLetter:
    """`msg` as a DeadLetter: payload (lossy UTF-8 and exact base64), origin, error, time;
    a payload over `MAX_PAYLOAD_BYTES` is cut there, with the original's size and SHA-256."""
    raw = msg.value() or b""
    kept = raw[:MAX_PAYLOAD_BYTES]
    truncated = len(raw) > len(kept)
    return DeadLetter(
        source_topic=msg.topic() or "",
        source_partition=msg.partition() or 0,
        source_offset=msg.offset() or 0,
        error=error if len(error) <= MAX_ERROR_CHARS else error[:MAX_ERROR_CHARS] + "…",
        payload=kept.decode("utf-8", errors="replace"),
        payload_base64=base64.b64encode(kept).decode("ascii"),
        order_id=order_id,
        payload_truncated=truncated,
        payload_bytes=len(raw),
        payload_sha256=hashlib.sha256(raw).hexdigest() if truncated else None,
    )


async def send_to_dead_letter(
    producer: EventProducer,
    msg: Message,
    error: str,
    order_id: UUID | None = None,
    *,
    topic: str = topics.DEAD_LETTER,
) -> DeadLetter:
    """Publish `msg` to the dead-letter topic (keyed by order id, if known) and wait for the ack."""
    letter = dead_letter_for(msg, error, order_id)
    log.warning(
        "Dead-lettering %s[%d]@%d: %s",
        letter.source_topic,
        letter.source_partition,
        letter.source_offset,
        error,
    )
    await producer.publish(topic, letter, key=str(order_id) if order_id is not None else None)
    return letter


Source = tuple[str, int, int]


def source_of(msg: Message) -> Source:
    """Where `msg` is: (topic, partition, offset), the identity of its dead letter."""
    return msg.topic() or "", msg.partition() or 0, msg.offset() or 0


class SourceRecord:
    """Source messages seen by this process, forgotten once their offsets are committed past
    (a committed message is not read again, so the record stays as small as what is in hand)."""

    def __init__(self) -> None:
        self._offsets: dict[tuple[str, int], set[int]] = {}

    def __contains__(self, msg: Message) -> bool:
        topic, partition, offset = source_of(msg)
        return offset in self._offsets.get((topic, partition), ())

    def __len__(self) -> int:
        return sum(len(offsets) for offsets in self._offsets.values())

    def add(self, msg: Message) -> None:
        topic, partition, offset = source_of(msg)
        self._offsets.setdefault((topic, partition), set()).add(offset)

    def committed(self, offsets: Sequence[TopicPartition]) -> None:
        """Forget what lies before these committed offsets (the next offset to read)."""
        for tp in offsets:
            kept = self._offsets.get((tp.topic, tp.partition))
            if kept is None:
                continue
            kept.difference_update([o for o in kept if o < tp.offset])
            if not kept:
                del self._offsets[(tp.topic, tp.partition)]


class DeadLetterPublisher:
    """Publishes a message's dead letter once per process, however often its batch is retried.

    Handlers call `publish` for what they refuse; the consumer calls `park` for a message that
    failed alone `POISON_ATTEMPTS` times, and `committed` after each commit. A letter is
    recorded once the broker acknowledged it, so a failed publish is tried again with the batch.
    """

    def __init__(self, producer: EventProducer, topic: str = topics.DEAD_LETTER) -> None:
        self.producer = producer
        self.topic = topic
        self._sent = SourceRecord()

    async def publish(self, msg: Message, error: str, order_id: UUID | None = None) -> bool:
        """Dead-letter `msg` unless this process already did; True when it was sent now."""
        if msg in self._sent:
            log.info("%s[%d]@%d is dead-lettered already", *source_of(msg))
            return False
        await send_to_dead_letter(self.producer, msg, error, order_id, topic=self.topic)
        self._sent.add(msg)
        return True

    async def park(self, msg: Message, reason: str) -> None:
        """The consumer's sink for a message that fails alone (its order id is unknown here)."""
        await self.publish(msg, reason)

    def committed(self, offsets: Sequence[TopicPartition]) -> None:
        """The consumer committed these offsets: what lies before them is never read again."""
        self._sent.committed(offsets)
