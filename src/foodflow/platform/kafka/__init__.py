"""Long-lived async Kafka clients: idempotent producer, batch consumer, dead letters, admin."""

from foodflow.platform.kafka.consumer import BatchConsumer, BatchHandler
from foodflow.platform.kafka.dlq import dead_letter_for, send_to_dead_letter
from foodflow.platform.kafka.producer import EventProducer

__all__ = [
    "BatchConsumer",
    "BatchHandler",
    "EventProducer",
    "dead_letter_for",
    "send_to_dead_letter",
]
