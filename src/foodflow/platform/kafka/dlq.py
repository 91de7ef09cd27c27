"""Dead letters: a message that cannot be handled is parked on `topics.DEAD_LETTER` with why."""

from __future__ import annotations

import base64
import logging
from uuid import UUID

from confluent_kafka import Message

from foodflow.contracts import topics
from foodflow.contracts.orders import DeadLetter
from foodflow.platform.kafka.producer import EventProducer

log = logging.getLogger(__name__)


def dead_letter_for(msg: Message, error: str, order_id: UUID | None = None) -> DeadLetter:
    """`msg` as a DeadLetter: payload (lossy UTF-8 and exact base64), origin, error, time."""
    raw = msg.value() or b""
    return DeadLetter(
        source_topic=msg.topic() or "",
        source_partition=msg.partition() or 0,
        source_offset=msg.offset() or 0,
        error=error,
        payload=raw.decode("utf-8", errors="replace"),
        payload_base64=base64.b64encode(raw).decode("ascii"),
        order_id=order_id,
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
