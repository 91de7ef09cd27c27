"""This machine's ceilings for the work one order causes, measured next to the benchmark.

- PostgreSQL: the order writer's own transaction (`records.write_final_orders`: multi-row upsert
  of orders, items replaced, history inserted) on synthetic final events, in copies of the three
  tables in a scratch schema, batches of 500, two writers at once (two cores).
- Kafka: produce → consume of messages of the size of a final order event, on a scratch topic
  with as many partitions as ours, with the producer settings the services use (idempotent,
  acks=all, lz4, linger 5 ms); the rate is messages / (last consumed - first produced).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
from confluent_kafka import Consumer

from foodflow.contracts.orders import (
    OrderFinalEvent,
    OrderStatus,
    PricedItem,
    StatusChange,
)
from foodflow.contracts.pricing import PriceBreakdown
from foodflow.orders import records
from foodflow.platform.config import Settings
from foodflow.platform.kafka.admin import delete_topics, ensure_topics
from foodflow.tools.kafka_io import tool_producer

log = logging.getLogger(__name__)

SCRATCH_SCHEMA = "bench_scratch"
PG_BATCH = 500
PG_WRITERS = 2


def sample_final_event() -> OrderFinalEvent:
    now = datetime.now(UTC)
    return OrderFinalEvent(
        order_id=uuid.uuid4(),
        user_id="bench-user-1",
        status=OrderStatus.CONFIRMED,
        version=3,
        price=PriceBreakdown(
            subtotal=Decimal("23.00"),
            discount=Decimal("0.00"),
            delivery_fee=Decimal("2.99"),
            small_order_fee=Decimal("0.00"),
            tax=Decimal("1.82"),
            total=Decimal("27.81"),
            currency="EUR",
        ),
        created_at=now,
        updated_at=now,
        items=[
            PricedItem(
                item_id="bench-01",
                quantity=2,
                unit_price=Decimal("6.00"),
                line_total=Decimal("12.00"),
            ),
            PricedItem(
                item_id="bench-02",
                quantity=1,
                unit_price=Decimal("11.00"),
                line_total=Decimal("11.00"),
            ),
        ],
        history=[
            StatusChange(status=s, version=v, at=now)
            for v, s in enumerate(
                (OrderStatus.RECEIVED, OrderStatus.PROCESSING, OrderStatus.CONFIRMED), 1
            )
        ],
    )


async def postgres_ceiling(settings: Settings, seconds: float = 3.0) -> dict[str, float]:
    """Orders/s PostgreSQL takes through the writer's statements; scratch schema dropped after."""
    admin = await asyncpg.connect(settings.postgres_dsn)
    try:
        await records.create_scratch_tables(admin, SCRATCH_SCHEMA)
        template = sample_final_event()
        pool = await asyncpg.create_pool(
            settings.postgres_dsn,
            min_size=PG_WRITERS,
            max_size=PG_WRITERS,
            server_settings={"search_path": SCRATCH_SCHEMA},
        )
        written = 0
        try:
            deadline = time.monotonic() + seconds

            async def writer() -> None:
                nonlocal written
                while time.monotonic() < deadline:
                    batch = [
                        template.model_copy(update={"order_id": uuid.uuid4()})
                        for _ in range(PG_BATCH)
                    ]
                    await records.write_final_orders(
                        pool, sorted(batch, key=lambda e: e.order_id.bytes)
                    )
                    written += len(batch)

            started = time.monotonic()
            await asyncio.gather(*(writer() for _ in range(PG_WRITERS)))
            elapsed = time.monotonic() - started
        finally:
            await pool.close()
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {SCRATCH_SCHEMA} CASCADE")
        await admin.close()
    return {
        "orders_per_s": written / elapsed,
        "orders": written,
        "seconds": elapsed,
        "batch": PG_BATCH,
        "writers": PG_WRITERS,
    }


def kafka_ceiling(
    settings: Settings, message_bytes: int, count: int = 100_000, timeout: float = 30.0
) -> dict[str, float]:
    """Messages/s through the broker, produce → consume; the scratch topic is deleted after."""
    topic = f"bench_scratch_{uuid.uuid4().hex[:8]}"
    # Replicated as the system's own topics are: on a cluster the ceiling includes replication.
    ensure_topics(
        settings.kafka_bootstrap,
        settings.topic_partitions,
        [topic],
        replication_factor=settings.kafka_replication_factor,
        min_insync_replicas=settings.kafka_min_insync_replicas,
    )
    try:
        consumed = 0
        last_consumed = 0.0
        ready = threading.Event()
        stop = threading.Event()

        def consume() -> None:
            nonlocal consumed, last_consumed
            consumer = Consumer(
                {
                    "bootstrap.servers": settings.kafka_bootstrap,
                    "group.id": f"{topic}-reader",
                    "auto.offset.reset": "earliest",
                    "enable.auto.commit": False,
                }
            )
            consumer.subscribe([topic], on_assign=lambda c, parts: ready.set())
            try:
                while consumed < count and not stop.is_set():
                    for msg in consumer.consume(1000, 0.1):
                        if msg.error() is None:
                            consumed += 1
                            last_consumed = time.monotonic()
            finally:
                consumer.close()

        reader = threading.Thread(target=consume, name="bench-kafka-ceiling", daemon=True)
        reader.start()
        ready.wait(timeout)
        producer = tool_producer(
            settings, {"acks": "all", "linger.ms": 5, "compression.type": "lz4"}
        )
        # A real final event's JSON cut to size, each made distinct by its key at the front.
        body = sample_final_event().model_dump_json().encode()
        body = (body * (message_bytes // len(body) + 1))[:message_bytes]
        started = time.monotonic()
        for i in range(count):
            key = uuid.uuid4().hex.encode()
            value = key + body[len(key) :]
            while True:
                try:
                    producer.produce(topic, value, key=key)
                    break
                except BufferError:
                    producer.poll(0.01)
            if i % 1000 == 0:
                producer.poll(0)
        producer.flush(timeout)
        reader.join(timeout)
        stop.set()
        elapsed = (last_consumed or time.monotonic()) - started
    finally:
        delete_topics(settings.kafka_bootstrap, [topic])
    return {
        "messages_per_s": consumed / elapsed,
        "messages": consumed,
        "seconds": elapsed,
        "message_bytes": message_bytes,
    }
