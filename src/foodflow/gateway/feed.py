"""Status events from Kafka to the board and to every Server-Sent-Events subscriber.

Each subscriber has a bounded queue. A client that does not keep up (its queue is full) is
dropped rather than slowing the consumer or growing memory: its stream ends and the browser's
EventSource reconnects and starts again from a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from confluent_kafka import Message
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from foodflow.contracts.orders import OrderStatusUpdate
from foodflow.gateway.board import Board, is_test_user

log = logging.getLogger(__name__)

SUBSCRIBER_QUEUE_SIZE = 256
# Customers' names and emails kept in memory (ids not found are remembered as None too).
MAX_CONTACTS = 10_000
# How long the live feed waits for customers' names before it shows their ids instead.
LOOKUP_TIMEOUT_SECONDS = 2.0

# Name and email by user id, for the registered users among the given ids.
ContactLookup = Callable[[list[UUID]], Awaitable[dict[UUID, tuple[str, str]]]]

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


class Contacts:
    """Customers shown by name and email: looked up in the gateway's `users`, once per user id
    (one query per batch for the ids not seen yet), and kept in a bounded LRU."""

    def __init__(self, lookup: ContactLookup | None, size: int = MAX_CONTACTS) -> None:
        self._lookup = lookup
        self._size = size
        self._known: OrderedDict[str, tuple[str, str] | None] = OrderedDict()

    async def learn(self, user_ids: Iterable[str]) -> None:
        """Look up the ids not known yet (only UUIDs: other clients' user ids are no account)."""
        if self._lookup is None:
            return
        wanted: dict[UUID, str] = {}
        for user_id in user_ids:
            if user_id in self._known:
                self._known.move_to_end(user_id)
                continue
            try:
                wanted[UUID(user_id)] = user_id
            except ValueError:
                self._remember(user_id, None)
        if not wanted:
            return
        try:
            # Bounded: the live feed waits for this, and must not stall behind a slow database.
            async with asyncio.timeout(LOOKUP_TIMEOUT_SECONDS):
                found = await self._lookup(list(wanted))
        except Exception as exc:  # PostgreSQL down: the ids are shown, and asked for again later
            log.warning("Customer names unavailable: %s", exc)
            return
        for uuid_, user_id in wanted.items():
            self._remember(user_id, found.get(uuid_))

    def _remember(self, user_id: str, contact: tuple[str, str] | None) -> None:
        self._known[user_id] = contact
        while len(self._known) > self._size:
            self._known.popitem(last=False)

    def label(self, user_id: str) -> str | None:
        """ "Name <email>" of a registered user; None otherwise."""
        contact = self._known.get(user_id)
        return f"{contact[0]} <{contact[1]}>" if contact else None

    def is_test(self, user_id: str) -> bool:
        return is_test_user(user_id)


class StatusFeed:
    """The gateway consumer's batch handler: apply each event to the board, then broadcast it
    (test traffic is counted but not broadcast: the list of orders leaves it out)."""

    def __init__(
        self, board: Board, broadcaster: Broadcaster, contacts: Contacts | None = None
    ) -> None:
        self.board = board
        self.broadcaster = broadcaster
        self.contacts = contacts or Contacts(None)

    async def handle_batch(self, messages: list[Message]) -> None:
        updates = []
        for msg in messages:
            try:
                updates.append(OrderStatusUpdate.model_validate_json(msg.value() or b""))
            except ValidationError as exc:
                # Dead-lettering is the order manager's job; the dashboard skips what it can't show.
                STATUS_EVENTS.labels("invalid").inc()
                log.warning(
                    "Skipping an unreadable status event at offset %s: %s", msg.offset(), exc
                )
        await self.contacts.learn(
            {u.user_id for u in updates if self.board.get(u.order_id) is None}
        )
        for update in updates:
            card = self.board.apply(
                update,
                customer=self.contacts.label(update.user_id),
                test=self.contacts.is_test(update.user_id),
            )
            if card is None:
                STALE.inc()
                continue
            APPLIED.inc()
            if self.broadcaster and not card.test:  # nobody watching: no need to render it
                self.broadcaster.publish("order", card.model_dump(mode="json"))

    def publish_stats(self, now: datetime | None = None) -> None:
        stats = self.board.stats(now or datetime.now(UTC))
        self.broadcaster.publish("stats", stats.model_dump(mode="json"))
