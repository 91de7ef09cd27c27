"""The consumer side of the order manager: a batch of messages in, many orders in flight."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from uuid import UUID

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message
from prometheus_client import Counter, Gauge, Histogram

from foodflow.contracts.orders import OrderFinalEvent
from foodflow.order_manager.messages import Accepted, InvalidMessage, read_order
from foodflow.order_manager.saga import Announcer, OrderSaga, StatusStore
from foodflow.orders.lifecycle import Order
from foodflow.orders.status_store import SaveOutcome
from foodflow.platform.kafka.dlq import DeadLetterPublisher

log = logging.getLogger(__name__)

ORDERS_IN_FLIGHT = Gauge("foodflow_orders_in_flight", "Orders the saga is driving right now")
ORDER_SECONDS = Histogram(
    "foodflow_order_seconds",
    "Time from receipt to a final state",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30),
)
DEAD_LETTERS = Counter("foodflow_dead_letters_total", "Messages sent to the dead-letter topic")


def published_at(msg: Message) -> datetime | None:
    """When `msg` was published: its Kafka timestamp (the producer's create time, or the
    broker's append time if the topic says so); None when the message carries none."""
    kind, millis = msg.timestamp()
    if kind == TIMESTAMP_NOT_AVAILABLE or millis <= 0:
        return None
    return datetime.fromtimestamp(millis / 1000, UTC)


class OrderIntake:
    """Handles one batch from `validated_orders`; returns when every order in it is final."""

    def __init__(
        self,
        saga: OrderSaga,
        dead_letters: DeadLetterPublisher,
        store: StatusStore,
        announce: Announcer,
        max_in_flight: int,
    ) -> None:
        self.saga = saga
        self.dead_letters = dead_letters
        self.store = store
        self.announce = announce
        self._slots = asyncio.Semaphore(max_in_flight)

    async def handle_batch(self, messages: list[Message]) -> None:
        seen: set[UUID] = set()
        work = []
        for msg in messages:
            topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
            parsed = read_order(msg.value(), topic, partition, offset)
            if isinstance(parsed, InvalidMessage):
                work.append(self._reject(msg, parsed))
                continue
            if parsed.order_id in seen:
                log.warning("Order %s appears twice in one batch; once is enough", parsed.order_id)
                continue
            seen.add(parsed.order_id)
            work.append(self._drive(parsed, published_at(msg)))
        # Every order of the batch runs to its end before any failure is raised: the batch is
        # then handed back whole (offsets uncommitted) and its orders replay idempotently.
        outcomes = await asyncio.gather(*work, return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            raise failures[0]

    async def _drive(self, accepted: Accepted, published: datetime | None) -> None:
        if accepted.id_assigned:
            log.info("Assigned order id %s to an order without one", accepted.order_id)
        async with self._slots:
            ORDERS_IN_FLIGHT.inc()
            try:
                with ORDER_SECONDS.time():
                    await self.saga.run(accepted.order_id, accepted.order, published)
            finally:
                ORDERS_IN_FLIGHT.dec()

    async def _reject(self, msg: Message, invalid: InvalidMessage) -> None:
        log.warning(
            "Rejected message %s/%s@%s: %s",
            msg.topic(),
            msg.partition(),
            msg.offset(),
            invalid.error,
        )
        # Once per process: a batch retried after an outage does not publish the letter again,
        # but stores and announces the order's failure if that did not happen yet.
        if await self.dead_letters.publish(msg, invalid.error, invalid.order_id):
            DEAD_LETTERS.inc()
        if invalid.order_id is not None:
            event = Order.reject(
                invalid.order_id,
                invalid.user_id or "unknown",
                invalid.error[:1000],
                published_at=published_at(msg),
            )
            update = event.status_update()
            # Announced when stored now, or again when an earlier delivery of this very message
            # stored it; never over an order of the same id that a valid message drives.
            outcome = await self.store.save(event)
            if outcome is SaveOutcome.ALREADY_THERE:
                stored = await self.store.load_snapshot(update.order_id)
                if stored is not None and stored.version == 1 and stored.reason == event.reason:
                    again = OrderFinalEvent.model_validate(stored.model_dump())
                    await self.announce(again.status_update(), again)
            elif outcome is SaveOutcome.WRITTEN:
                await self.announce(update, event)
