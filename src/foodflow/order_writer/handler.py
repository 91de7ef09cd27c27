"""The Kafka side of the writer: messages → valid events (the rest to dead letters) → one write."""

from __future__ import annotations

import asyncio
import logging
import time
from uuid import UUID

from confluent_kafka import Message

from foodflow.contracts import topics
from foodflow.contracts.orders import OrderFinalEvent
from foodflow.order_writer.domain import Rejected, parse_message, reduce_batch
from foodflow.order_writer.metrics import WriterMetrics
from foodflow.order_writer.services import OrderStore, write_final_orders
from foodflow.orders.records import WriteResult
from foodflow.platform.kafka.dlq import send_to_dead_letter
from foodflow.platform.kafka.producer import EventProducer

log = logging.getLogger(__name__)

# Above this many orders in one batch, per-order lines go to DEBUG and INFO gets a summary.
PER_ORDER_INFO_LIMIT = 20


class PersistFinalOrders:
    """`handle_batch` for the writer's BatchConsumer.

    Dead letters are published only after the batch is in PostgreSQL, so a retried batch
    (PostgreSQL or Kafka failing midway) writes the same rows and, at worst, repeats a dead letter.
    """

    def __init__(
        self,
        store: OrderStore,
        producer: EventProducer,
        metrics: WriterMetrics,
        *,
        dead_letter_topic: str = topics.DEAD_LETTER,
    ) -> None:
        self._store = store
        self._producer = producer
        self._metrics = metrics
        self._dead_letter_topic = dead_letter_topic

    async def __call__(self, messages: list[Message]) -> None:
        sources: dict[int, Message] = {}
        events: list[OrderFinalEvent] = []
        rejected: list[tuple[Message, str, UUID | None]] = []
        for msg in messages:
            parsed = parse_message(msg.value(), msg.key())
            if isinstance(parsed, Rejected):
                rejected.append((msg, parsed.error, parsed.order_id))
            else:
                events.append(parsed)
                sources[id(parsed)] = msg
        reduced = reduce_batch(events)

        started = time.perf_counter()
        result, failed = await write_final_orders(self._store, reduced)
        self._metrics.batch_write_seconds.observe(time.perf_counter() - started)
        rejected.extend((sources[id(event)], error, event.order_id) for event, error in failed)

        if rejected:
            await asyncio.gather(
                *(
                    send_to_dead_letter(
                        self._producer, msg, error, order_id, topic=self._dead_letter_topic
                    )
                    for msg, error, order_id in rejected
                )
            )
        self._record(result, superseded=len(events) - len(reduced), dead_letters=len(rejected))

    def _record(self, result: WriteResult, *, superseded: int, dead_letters: int) -> None:
        m = self._metrics
        m.batches.inc()
        m.last_batch.set_to_current_time()
        m.rows_written.labels("orders").inc(len(result.orders_written))
        m.rows_written.labels("order_items").inc(result.item_rows)
        m.rows_written.labels("order_status_history").inc(result.history_rows)
        m.events.labels("written").inc(len(result.orders_written))
        m.events.labels("stale").inc(len(result.stale))
        m.events.labels("superseded").inc(superseded)
        m.events.labels("dead_letter").inc(dead_letters)
        m.dead_letters.inc(dead_letters)

        level = (
            logging.INFO if len(result.orders_written) <= PER_ORDER_INFO_LIMIT else logging.DEBUG
        )
        for event in result.orders_written:
            log.log(
                level,
                "Persisted order %s status=%s version=%d",
                event.order_id,
                event.status.value,
                event.version,
            )
        for event in result.stale:
            log.debug(
                "Skipped order %s version=%d: a newer one is stored", event.order_id, event.version
            )
        if level == logging.DEBUG or result.stale or dead_letters:
            log.info(
                "Batch: %d order(s) persisted, %d stale, %d superseded, %d dead-lettered",
                len(result.orders_written),
                len(result.stale),
                superseded,
                dead_letters,
            )
