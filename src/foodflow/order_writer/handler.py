"""The Kafka side of the writer: messages → valid events (the rest to dead letters) → one write."""

from __future__ import annotations

import asyncio
import logging
import time
from uuid import UUID

from confluent_kafka import Message

from foodflow.contracts.orders import OrderFinalEvent
from foodflow.order_writer.domain import Rejected, parse_message, reduce_batch
from foodflow.order_writer.metrics import WriterMetrics
from foodflow.order_writer.services import OrderStore, write_final_orders
from foodflow.orders.records import WriteResult
from foodflow.platform.kafka.dlq import DeadLetterPublisher
from foodflow.platform.logs import batch_of

log = logging.getLogger(__name__)

# Above this many orders in one batch, per-order lines go to DEBUG and INFO gets a summary.
PER_ORDER_INFO_LIMIT = 20


class PersistFinalOrders:
    """`handle_batch` for the writer's BatchConsumer.

    Dead letters are published only after the batch is in PostgreSQL, so a retried batch
    (PostgreSQL or Kafka failing midway) writes the same rows; `DeadLetterPublisher` sends each
    letter once per process. An event PostgreSQL refuses is a final order the system of record
    will not hold: it counts in `rejects` (an alert) and is logged as an error, once.
    """

    def __init__(
        self, store: OrderStore, dead_letters: DeadLetterPublisher, metrics: WriterMetrics
    ) -> None:
        self._store = store
        self._dead_letters = dead_letters
        self._metrics = metrics

    async def __call__(self, messages: list[Message]) -> None:
        sources: dict[int, Message] = {}
        events: list[OrderFinalEvent] = []
        unreadable: list[tuple[Message, str, UUID | None]] = []
        for msg in messages:
            parsed = parse_message(msg.value(), msg.key())
            if isinstance(parsed, Rejected):
                unreadable.append((msg, parsed.error, parsed.order_id))
            else:
                events.append(parsed)
                sources[id(parsed)] = msg
        reduced = reduce_batch(events)

        started = time.perf_counter()
        result, failed = await write_final_orders(self._store, reduced)
        self._metrics.batch_write_seconds.observe(time.perf_counter() - started)
        refused = [(sources[id(event)], error, event.order_id) for event, error in failed]

        sent = await asyncio.gather(
            *(
                self._dead_letters.publish(msg, error, order_id)
                for msg, error, order_id in unreadable + refused
            )
        )
        for (_, error, order_id), new in zip(refused, sent[len(unreadable) :], strict=True):
            if new:
                self._metrics.rejects.inc()
                log.error("PostgreSQL refused final order %s (dead-lettered): %s", order_id, error)
        self._record(result, superseded=len(events) - len(reduced), dead_letters=sum(sent))

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
            # A big batch's orders are named on this one line (their own lines are DEBUG).
            log.info(
                "Batch: %d order(s) persisted, %d stale, %d superseded, %d dead-lettered",
                len(result.orders_written),
                len(result.stale),
                superseded,
                dead_letters,
                extra=batch_of(e.order_id for e in (*result.orders_written, *result.stale)),
            )
