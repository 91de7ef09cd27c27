"""The load generator: sends orders on `validated_orders` and times each one to the end.

Three observers per order, all against the real servers:
- the final status event on `order_status_updates` (a consumer thread, `poll()` per message,
  so the time taken is when librdkafka hands the message over: sub-millisecond resolution);
- Redis: once the event is seen, the live status (`status_store`, batched MGETs) must show the
  same status (the saga writes Redis before it publishes: the event time bounds Redis visibility);
- PostgreSQL: every `PG_POLL_SECONDS` one read of the stored statuses (`records.stored_statuses`)
  over the orders whose final event was seen and that are not yet seen there (every order not
  yet seen there once sending is done); an order counts as persisted at the start of the first
  poll that finds it (the snapshot is taken then), so the figure is high by at most one interval.
  Polling only orders already final keeps the bench's own load on PostgreSQL small (a window of
  2,000 unfinished orders looked up 50 times a second was ~100,000 index probes a second).

Open loop (`rate`): order i is due at t0 + i/rate and its latency runs from that due time, so a
system that falls behind shows its queueing. Closed loop (`rate=None`): at most `window` orders
unfinished; an order's latency runs from its actual send.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import asyncpg
import orjson
import redis.asyncio as aioredis
from confluent_kafka import Consumer, TopicPartition
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from foodflow.contracts import topics
from foodflow.contracts.orders import OrderStatus
from foodflow.inventory_service.repository import CatalogueItem, InventoryRepository
from foodflow.orders import records, status_store
from foodflow.platform.config import Settings
from foodflow.platform.periodic import periodic_task
from foodflow.platform.retry import retry_async
from foodflow.tools.kafka_io import TopicReader, tool_producer

log = logging.getLogger(__name__)

PG_POLL_SECONDS = 0.02
REDIS_CHECK_SECONDS = 0.02
BENCH_ITEMS = tuple(f"bench-{i:02d}" for i in range(32))
# Where the saga ends an order, as text and as the bytes the status consumer scans for.
FINAL_TEXT = tuple(s.value for s in OrderStatus if s.ends_saga)
FINAL = tuple(s.encode() for s in FINAL_TEXT)
POSTGRES_DOWN = (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError)


@dataclass
class LoadResult:
    """Per-order observations; times are `time.monotonic()` seconds, NaN-free: None if unseen."""

    started: float
    send_end: float
    finished: float
    warmup: float
    due: list[float] = field(default_factory=list)
    status: list[str | None] = field(default_factory=list)
    confirmed_at: list[float | None] = field(default_factory=list)
    persisted_at: list[float | None] = field(default_factory=list)
    redis_ok: list[bool] = field(default_factory=list)
    produce_errors: int = 0

    @property
    def sent(self) -> int:
        return len(self.due)


async def prepare_catalogue(settings: Settings) -> None:
    """Bench items with stock that a run cannot exhaust, so no order fails OUT_OF_STOCK; the
    bench orders only these, never the shop's own (seeded) stock. Unlisted: customers and the
    dashboard's stock panel never see them (inventory's listing leaves them out)."""
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        await InventoryRepository(conn).put_items(
            CatalogueItem(
                item, f"bench item {item}", Decimal(5 + i % 8), 1_000_000_000, listed=False
            )
            for i, item in enumerate(BENCH_ITEMS)
        )
    finally:
        await conn.close()


async def remove_catalogue(settings: Settings) -> None:
    """Take the bench items out of the catalogue again (orders that name them keep their lines;
    the next run creates them anew)."""
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        await InventoryRepository(conn).remove_items(BENCH_ITEMS)
    finally:
        await conn.close()


def order_manager_backlog(settings: Settings) -> int:
    """Messages on `validated_orders` the order_manager group has not committed yet."""
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap, "group.id": "order_manager"}
    )
    try:
        meta = consumer.list_topics(topics.VALIDATED_ORDERS, timeout=10)
        parts = [
            TopicPartition(topics.VALIDATED_ORDERS, p)
            for p in meta.topics[topics.VALIDATED_ORDERS].partitions
        ]
        backlog = 0
        for tp in consumer.committed(parts, timeout=10):
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            backlog += high - (tp.offset if tp.offset >= 0 else low)
        return backlog
    finally:
        consumer.close()


def wait_for_backlog(settings: Settings, timeout: float = 120.0) -> int:
    """Wait until an earlier run's orders are through, so they do not queue ahead of ours."""
    deadline = time.monotonic() + timeout
    while (backlog := order_manager_backlog(settings)) > 0 and time.monotonic() < deadline:
        time.sleep(1.0)
    return backlog


def order_body(order_id: uuid.UUID, rng: random.Random) -> bytes:
    items = rng.sample(BENCH_ITEMS, 2)
    return orjson.dumps(
        {
            "order_id": str(order_id),
            "user_id": f"bench-user-{rng.randrange(1000)}",
            "items": [{"item_id": item, "quantity": rng.randint(1, 2)} for item in items],
        }
    )


class LoadRun:
    """One run: `await LoadRun(...).run()` returns the LoadResult."""

    def __init__(
        self,
        settings: Settings,
        *,
        rate: float | None,
        duration: float,
        warmup: float,
        window: int = 2000,
        drain_timeout: float = 30.0,
    ) -> None:
        self.settings = settings
        self.rate = rate
        self.duration = duration
        self.warmup = warmup
        self.window = window
        self.drain_timeout = drain_timeout
        self.ids: list[uuid.UUID] = []
        self.index: dict[bytes, int] = {}
        self.res = LoadResult(started=0.0, send_end=0.0, finished=0.0, warmup=warmup)
        self.done_count = 0  # orders persisted (or final and then persisted): closes the window
        self.final_count = 0
        self._stop_consumer = threading.Event()
        self._sending_done = threading.Event()
        # Set when the run is abandoned (Ctrl-C, SIGTERM): the sender stops at its next order
        # instead of sending out the whole duration while the bench waits to clean up.
        self._stop_sending = threading.Event()
        self._consumer_ready = threading.Event()
        # What the observers carry from one step to the next.
        self._conn: asyncpg.Connection | None = None
        self._unpersisted_from = 0  # every order before this index is persisted
        self._redis_checked_upto = 0
        self._redis_unchecked: list[int] = []
        self._all_persisted = asyncio.Event()
        self._all_in_redis = asyncio.Event()

    # --- threads ---------------------------------------------------------------------------

    def _send(self) -> None:
        producer = tool_producer(
            self.settings, {"acks": "all", "linger.ms": 1, "compression.type": "lz4"}
        )
        rng = random.Random(42)
        res = self.res
        errors = 0

        def delivered(err: object, msg: object) -> None:
            nonlocal errors
            if err is not None:
                errors += 1

        start = res.started
        end = start + self.duration
        i = 0
        while not self._stop_sending.is_set():
            now = time.monotonic()
            if self.rate is not None:
                due = start + i / self.rate
                if due >= end:
                    break
                if due > now:
                    producer.poll(0)
                    time.sleep(min(due - now, 0.05))
                    continue
            else:
                if now >= end:
                    break
                if i - self.done_count >= self.window:
                    producer.poll(0.001)
                    continue
                due = now
            order_id = uuid.uuid4()
            key = str(order_id).encode()
            self.ids.append(order_id)
            self.index[key] = i
            res.status.append(None)
            res.confirmed_at.append(None)
            res.persisted_at.append(None)
            res.redis_ok.append(False)
            res.due.append(due)  # last: the observers treat len(due) as "sent"
            while True:
                try:
                    producer.produce(
                        topics.VALIDATED_ORDERS,
                        order_body(order_id, rng),
                        key=key,
                        on_delivery=delivered,
                    )
                    break
                except BufferError:
                    producer.poll(0.01)
            producer.poll(0)
            i += 1
        res.send_end = time.monotonic()
        producer.flush(30)
        res.produce_errors = errors
        self._sending_done.set()

    def _consume(self) -> None:
        with TopicReader(
            self.settings, topics.ORDER_STATUS_UPDATES, since_ms=None, group="bench"
        ) as reader:
            poll = reader.consumer.poll  # per message: no wrapper between us and librdkafka
            self._consumer_ready.set()
            res = self.res
            while not self._stop_consumer.is_set():
                msg = poll(0.05)
                if msg is None or msg.error() is not None:
                    continue
                seen = time.monotonic()
                i = self.index.get(msg.key() or b"")
                if i is None or res.confirmed_at[i] is not None:
                    continue
                value = msg.value() or b""
                if not any(s in value for s in FINAL):
                    continue  # cheap pre-filter before parsing: RECEIVED, PROCESSING
                status = orjson.loads(value).get("status")
                if status in FINAL_TEXT:
                    res.status[i] = status
                    res.confirmed_at[i] = seen
                    self.final_count += 1

    # --- asyncio observers: steps `run` repeats until every order is seen everywhere -------

    async def _poll_postgres(self) -> None:
        """One look for the orders final but not yet seen in PostgreSQL (every order not yet
        seen once sending is done); reconnects if PostgreSQL restarts under the run (shared
        servers do)."""
        res = self.res
        sent = len(res.due)
        first = self._unpersisted_from
        while first < sent and res.persisted_at[first] is not None:
            first += 1
        self._unpersisted_from = first
        draining = self._sending_done.is_set()
        pending = [
            i
            for i in range(first, sent)
            if res.persisted_at[i] is None and (draining or res.confirmed_at[i] is not None)
        ]
        if not pending:
            if draining:
                self._all_persisted.set()
            return
        try:
            conn = self._conn = self._conn or await self._connect_postgres()
            polled = time.monotonic()
            for chunk in range(0, len(pending), 10_000):
                part = pending[chunk : chunk + 10_000]
                stored = await records.stored_statuses(conn, [self.ids[i] for i in part])
                for order_id in stored:
                    i = self.index[order_id.encode()]
                    res.persisted_at[i] = polled
                    self.done_count += 1
        except POSTGRES_DOWN as exc:
            log.warning("PostgreSQL poll failed (%s); reconnecting", exc)
            self._conn = None

    async def _connect_postgres(self) -> asyncpg.Connection:
        conn: asyncpg.Connection = await retry_async(
            lambda: asyncpg.connect(self.settings.postgres_dsn),
            retry_on=POSTGRES_DOWN,
            attempts=None,
            base_delay=0.5,
            max_delay=0.5,
            on_retry=lambda attempt, exc, delay: log.warning(
                "PostgreSQL poll failed (%s); reconnecting", exc
            ),
        )
        return conn

    async def _check_redis(self, client: aioredis.Redis) -> None:
        """One `MGET` of the orders whose final event was seen and Redis did not show yet."""
        res = self.res
        sent = len(res.due)
        self._redis_unchecked.extend(range(self._redis_checked_upto, sent))
        self._redis_checked_upto = sent
        ready = [i for i in self._redis_unchecked if res.confirmed_at[i] is not None]
        if ready:
            ids = [self.ids[i] for i in ready]
            values = await retry_async(
                lambda: status_store.cached_status_values(client, ids),
                retry_on=(RedisConnectionError, RedisTimeoutError),
                attempts=None,
                base_delay=0.5,
                max_delay=0.5,
                on_retry=lambda attempt, exc, delay: log.warning(
                    "Redis check failed (%s); retrying", exc
                ),
            )
            for i, status in zip(ready, values, strict=True):
                if status is not None and status == res.status[i]:
                    res.redis_ok[i] = True
            self._redis_unchecked = [i for i in self._redis_unchecked if not res.redis_ok[i]]
        if not self._redis_unchecked and self._sending_done.is_set():
            self._all_in_redis.set()

    async def run(self, progress: Callable[[LoadRun], None] | None = None) -> LoadResult:
        consumer_thread = threading.Thread(target=self._consume, name="bench-status", daemon=True)
        consumer_thread.start()
        await asyncio.to_thread(self._consumer_ready.wait, 30)
        client = aioredis.from_url(self.settings.redis_url)

        async def report() -> None:
            if progress is not None:
                progress(self)

        try:
            self.res.started = time.monotonic()
            sender = threading.Thread(target=self._send, name="bench-send", daemon=True)
            sender.start()
            async with (
                periodic_task(
                    self._poll_postgres, PG_POLL_SECONDS, what="bench postgres", initial_delay=0
                ),
                periodic_task(
                    functools.partial(self._check_redis, client),
                    REDIS_CHECK_SECONDS,
                    what="bench redis",
                    initial_delay=0,
                ),
                periodic_task(report, 0.1, what="bench progress", initial_delay=0),
            ):
                await asyncio.to_thread(self._sending_done.wait)
                try:
                    async with asyncio.timeout(self.drain_timeout):
                        await self._all_persisted.wait()
                        await self._all_in_redis.wait()
                except TimeoutError:
                    log.warning("Drain timeout: some orders did not finish")
            await report()
        finally:
            self._stop_sending.set()  # a no-op after a whole run
            self._stop_consumer.set()
            await asyncio.to_thread(consumer_thread.join, 5)
            await client.aclose()
            if self._conn is not None:
                await self._conn.close()
        self.res.finished = time.monotonic()
        return self.res
