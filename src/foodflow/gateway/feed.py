"""Status events from Kafka to the board and to every Server-Sent-Events subscriber.

Each subscriber has a bounded queue. A client that does not keep up (its queue is full) is
dropped rather than slowing the consumer or growing memory: its stream ends and the browser's
EventSource reconnects and starts again from a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Message
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from foodflow.contracts.orders import OrderStatusUpdate
from foodflow.gateway.board import Board

log = logging.getLogger(__name__)

SUBSCRIBER_QUEUE_SIZE = 256

SSE_SUBSCRIBERS = Gauge("foodflow_gateway_sse_subscribers", "Dashboard streams open right now")
SSE_DROPPED = Counter(
    "foodflow_gateway_sse_dropped_total", "Dashboard streams closed because the client lagged"
)
STATUS_EVENTS = Counter(
    "foodflow_gateway_status_events_total",
    "Events read from order_status_updates, by outcome (applied, stale, invalid)",
    ["outcome"],
)

APPLIED, STALE = STATUS_EVENTS.labels("applied"), STATUS_EVENTS.labels("stale")


class Subscriber:
    """One open stream: a bounded queue of (event name, JSON-able data)."""

    def __init__(self, maxsize: int = SUBSCRIBER_QUEUE_SIZE) -> None:
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=maxsize)
        self.dropped = asyncio.Event()

    async def next(self, timeout: float) -> tuple[str, Any] | None:
        """The next event, or None after `timeout` seconds or once the subscriber is dropped."""
        if self.dropped.is_set():
            return None
        get = asyncio.ensure_future(self.queue.get())
        dropped = asyncio.ensure_future(self.dropped.wait())
        done, pending = await asyncio.wait(
            {get, dropped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return get.result() if get in done else None


class Broadcaster:
    """Fans events out to subscribers; never blocks and never waits for a slow one."""

    def __init__(self, queue_size: int = SUBSCRIBER_QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self._subscribers: set[Subscriber] = set()

    def __len__(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber(self.queue_size)
        self._subscribers.add(subscriber)
        SSE_SUBSCRIBERS.set(len(self._subscribers))
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)
        SSE_SUBSCRIBERS.set(len(self._subscribers))

    def publish(self, name: str, data: Any) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber.queue.put_nowait((name, data))
            except asyncio.QueueFull:
                log.warning(
                    "Dropping a dashboard stream that fell %d events behind", self.queue_size
                )
                subscriber.dropped.set()
                self.unsubscribe(subscriber)
                SSE_DROPPED.inc()


class StatusFeed:
    """The gateway consumer's batch handler: apply each event to the board, then broadcast it."""

    def __init__(self, board: Board, broadcaster: Broadcaster) -> None:
        self.board = board
        self.broadcaster = broadcaster

    async def handle_batch(self, messages: list[Message]) -> None:
        for msg in messages:
            try:
                update = OrderStatusUpdate.model_validate_json(msg.value() or b"")
            except ValidationError as exc:
                # Dead-lettering is the order manager's job; the dashboard skips what it can't show.
                STATUS_EVENTS.labels("invalid").inc()
                log.warning(
                    "Skipping an unreadable status event at offset %s: %s", msg.offset(), exc
                )
                continue
            card = self.board.apply(update)
            if card is None:
                STALE.inc()
                continue
            APPLIED.inc()
            if self.broadcaster:  # nobody watching: no need to render the card
                self.broadcaster.publish("order", card.model_dump(mode="json"))

    def publish_stats(self, now: datetime | None = None) -> None:
        stats = self.board.stats(now or datetime.now(UTC))
        self.broadcaster.publish("stats", stats.model_dump(mode="json"))
