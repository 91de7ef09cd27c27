"""Dead letters: a message that cannot be handled is parked on `topics.DEAD_LETTER` with why."""

from __future__ import annotations

import base64
import hashlib
import logging
from uuid import UUID

from confluent_kafka import Message

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
