"""The order writer end to end: real Kafka in, real PostgreSQL out, dead letters on Kafka."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from confluent_kafka import Message
from fastapi import FastAPI

from foodflow.contracts.orders import (
    DeadLetter,
    FailureReason,
    OrderFinalEvent,
    OrderStatus,
    PricedItem,
    StatusChange,
)
from foodflow.contracts.pricing import PriceBreakdown
from foodflow.order_writer.app import WriterRuntime, create_app
from foodflow.order_writer.store import PostgresOrderStore
from foodflow.platform.config import Settings
from foodflow.platform.db.pool import database_ready
from foodflow.platform.errors import ServiceUnavailable
from foodflow.platform.kafka.admin import delete_topics, ensure_topics, wait_for_kafka
from foodflow.platform.kafka.consumer import BatchConsumer
from foodflow.platform.kafka.producer import EventProducer

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 1, 18, 30, tzinfo=UTC)


def final_event(
    order_id: UUID,
    version: int = 3,
    status: OrderStatus = OrderStatus.CONFIRMED,
    *,
    quantity: int = 2,
) -> OrderFinalEvent:
    unit = Decimal("9.00")
    line_total = unit * quantity
    total = line_total + Decimal("25.50") + Decimal("2.99")
    return OrderFinalEvent(
        order_id=order_id,
        user_id="user-001",
        status=status,
        version=version,
        reason=FailureReason.PAYMENT_DECLINED if status == OrderStatus.FAILED else None,
        price=PriceBreakdown(
            subtotal=total - Decimal("2.99"),
            discount=Decimal("0.00"),
            delivery_fee=Decimal("2.99"),
            small_order_fee=Decimal("0.00"),
            tax=Decimal("0.00"),
            total=total,
        ),
        created_at=T0,
        updated_at=T0 + timedelta(seconds=version),
        items=[
            PricedItem(
                item_id="sushi-set",
                quantity=1,
                unit_price=Decimal("25.50"),
                line_total=Decimal("25.50"),
            ),
            PricedItem(item_id="pho-bo", quantity=quantity, unit_price=unit, line_total=line_total),
        ],
        history=[
            StatusChange(
                status=status
                if v == version
                else (OrderStatus.RECEIVED if v == 1 else OrderStatus.PROCESSING),
                version=v,
                at=T0 + timedelta(seconds=v),
            )
            for v in range(1, version + 1)
        ],
    )


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def kafka(settings: Settings) -> str:
    await asyncio.to_thread(wait_for_kafka, settings.kafka_bootstrap, 60.0)
    return settings.kafka_bootstrap


@pytest.fixture(scope="module")
async def pg(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = None
    for _ in range(60):  # PostgreSQL may be restarting
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=4)
            break
        await asyncio.sleep(1)
    assert pool is not None, "PostgreSQL did not answer"
    yield pool
    await pool.close()


@pytest.fixture
async def producer(settings: Settings, kafka: str) -> AsyncIterator[EventProducer]:
    async with EventProducer(settings) as producer:
        yield producer


@dataclass
class Writer:
    """A running order writer on its own input, dead-letter topic and consumer group."""

    topic: str
    dead_letter_topic: str
    app: FastAPI
    http: httpx.AsyncClient

    @property
    def runtime(self) -> WriterRuntime:
        runtime: WriterRuntime = self.app.state.runtime
        return runtime

    async def handled(self, count: int, within: float = 45.0) -> None:
        """Wait until the consumer has handled and committed `count` messages."""
        async with asyncio.timeout(within):
            while self.runtime.consumer.messages_handled < count:
                assert not self.runtime.task.done(), "consumer loop died"
                await asyncio.sleep(0.05)


WriterFactory = Callable[..., Awaitable[Writer]]


@pytest.fixture
async def writers(settings: Settings, kafka: str) -> AsyncIterator[WriterFactory]:
    """Start order writers; each gets fresh topics unless given some. All stop after the test."""
    stack = contextlib.AsyncExitStack()
    topics: list[str] = []

    async def start(topic: str | None = None, dead_letter_topic: str | None = None) -> Writer:
        if topic is None or dead_letter_topic is None:
            topic, dead_letter_topic = f"test-{uuid4().hex[:8]}", f"test-{uuid4().hex[:8]}"
            await asyncio.to_thread(ensure_topics, kafka, 3, [topic, dead_letter_topic])
            topics.extend([topic, dead_letter_topic])
        app = create_app(
            settings,
            topic=topic,
            group_id=f"order_writer-test-{uuid4().hex[:8]}",
            dead_letter_topic=dead_letter_topic,
        )
        await stack.enter_async_context(app.router.lifespan_context(app))
        http = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://writer")
        )
        return Writer(topic, dead_letter_topic, app, http)

    async with stack:
        yield start
    with contextlib.suppress(Exception):
        await asyncio.to_thread(delete_topics, kafka, topics)


# --- reading PostgreSQL -------------------------------------------------------------------------


async def snapshot(pg: asyncpg.Pool, *order_ids: UUID) -> dict[str, list[dict[str, Any]]]:
    ids = list(order_ids)
    queries = {
        "orders": "SELECT * FROM orders WHERE order_id = ANY($1) ORDER BY order_id",
        "order_items": (
            "SELECT * FROM order_items WHERE order_id = ANY($1) ORDER BY order_id, item_id"
        ),
        "order_status_history": (
            "SELECT * FROM order_status_history WHERE order_id = ANY($1) ORDER BY order_id, version"
        ),
    }
    return {
        table: [dict(row) for row in await pg.fetch(sql, ids)] for table, sql in queries.items()
    }


async def read_dead_letters(settings: Settings, topic: str, count: int) -> list[DeadLetter]:
    seen: list[Message] = []

    async def collect(batch: list[Message]) -> None:
        seen.extend(batch)

    consumer = BatchConsumer(settings, [topic], f"g-{uuid4().hex[:8]}", collect, poll_timeout=0.2)
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(45):
            while len(seen) < count:
                assert not task.done()
                await asyncio.sleep(0.05)
    finally:
        await consumer.stop()
        await task
    return [DeadLetter.model_validate_json(m.value() or b"") for m in seen]


# --- tests --------------------------------------------------------------------------------------


async def test_a_final_event_becomes_one_order_with_items_and_history(
    writers: WriterFactory, producer: EventProducer, pg: asyncpg.Pool
) -> None:
    writer = await writers()
    order_id = uuid4()
    event = final_event(order_id)
    await producer.publish(writer.topic, event, key=str(order_id))
    await writer.handled(1)

    tables = await snapshot(pg, order_id)
    [order] = tables["orders"]
    assert order["status"] == "CONFIRMED"
    assert order["version"] == 3
    assert order["user_id"] == "user-001"
    assert order["total"] == Decimal("46.49")
    assert order["subtotal"] == Decimal("43.50")
    assert order["currency"] == "EUR"
    assert order["created_at"] == T0
    assert PriceBreakdown.model_validate_json(order["price_breakdown"]) == event.price
    assert [(i["item_id"], i["quantity"], i["line_total"]) for i in tables["order_items"]] == [
        ("pho-bo", 2, Decimal("18.00")),
        ("sushi-set", 1, Decimal("25.50")),
    ]
    assert [(h["version"], h["status"]) for h in tables["order_status_history"]] == [
        (1, "RECEIVED"),
        (2, "PROCESSING"),
        (3, "CONFIRMED"),
    ]


async def test_the_same_event_twice_leaves_one_identical_row(
    writers: WriterFactory, producer: EventProducer, pg: asyncpg.Pool
) -> None:
    writer = await writers()
    order_id = uuid4()
    event = final_event(order_id)
    await producer.publish(writer.topic, event, key=str(order_id))
    await writer.handled(1)
    first = await snapshot(pg, order_id)

    # Once more in a later batch, then twice within one batch.
    await producer.publish(writer.topic, event, key=str(order_id))
    await writer.handled(2)
    await asyncio.gather(
        *(producer.publish(writer.topic, event, key=str(order_id)) for _ in range(2))
    )
    await writer.handled(4)
    assert await snapshot(pg, order_id) == first
    assert len(first["orders"]) == 1


async def test_an_older_version_never_overwrites_a_newer_one(
    writers: WriterFactory, producer: EventProducer, pg: asyncpg.Pool
) -> None:
    writer = await writers()
    across_batches, within_batch = uuid4(), uuid4()

    await producer.publish(
        writer.topic,
        final_event(across_batches, 4, OrderStatus.CANCELLED, quantity=3),
        key=str(across_batches),
    )
    await writer.handled(1)
    await producer.publish(writer.topic, final_event(across_batches, 3), key=str(across_batches))
    # Same key, same partition: newer then older, most likely in one batch.
    await asyncio.gather(
        producer.publish(
            writer.topic,
            final_event(within_batch, 4, OrderStatus.CANCELLED, quantity=3),
            key=str(within_batch),
        ),
        producer.publish(writer.topic, final_event(within_batch, 3), key=str(within_batch)),
    )
    await writer.handled(4)

    tables = await snapshot(pg, across_batches, within_batch)
    assert [(o["status"], o["version"]) for o in tables["orders"]] == [("CANCELLED", 4)] * 2
    quantities = {(i["order_id"], i["item_id"]): i["quantity"] for i in tables["order_items"]}
    assert quantities[(across_batches, "pho-bo")] == 3
    assert quantities[(within_batch, "pho-bo")] == 3
    history = [(h["order_id"], h["version"]) for h in tables["order_status_history"]]
    assert len(history) == len(set(history)) == 8


async def test_a_newer_version_replaces_the_order_and_its_items(
    writers: WriterFactory, producer: EventProducer, pg: asyncpg.Pool
) -> None:
    writer = await writers()
    order_id = uuid4()
    await producer.publish(writer.topic, final_event(order_id, 3), key=str(order_id))
    await writer.handled(1)
    newer = final_event(order_id, 4, OrderStatus.CANCELLED, quantity=5)
    newer.items.pop(0)  # sushi-set dropped from the order
    await producer.publish(writer.topic, newer, key=str(order_id))
    await writer.handled(2)

    tables = await snapshot(pg, order_id)
    assert [(o["status"], o["version"]) for o in tables["orders"]] == [("CANCELLED", 4)]
    assert [(i["item_id"], i["quantity"]) for i in tables["order_items"]] == [("pho-bo", 5)]
    assert [h["status"] for h in tables["order_status_history"]] == [
        "RECEIVED",
        "PROCESSING",
        "CONFIRMED",
        "CANCELLED",
    ]


async def test_garbage_goes_to_the_dead_letter_topic_and_the_writer_keeps_going(
    settings: Settings, writers: WriterFactory, producer: EventProducer, pg: asyncpg.Pool
) -> None:
    writer = await writers()
    good_before, good_after, bad_key = uuid4(), uuid4(), uuid4()
    await producer.publish(writer.topic, final_event(good_before), key=str(good_before))
    await producer.publish(writer.topic, b"{not json", key=str(bad_key))
    await producer.publish(writer.topic, b'{"order_id": "not-a-uuid", "status": "CONFIRMED"}')
    await writer.handled(3)
    await producer.publish(writer.topic, final_event(good_after), key=str(good_after))
    await writer.handled(4)

    tables = await snapshot(pg, good_before, good_after, bad_key)
    assert {o["order_id"] for o in tables["orders"]} == {good_before, good_after}

    letters = await read_dead_letters(settings, writer.dead_letter_topic, 2)
    by_payload = {letter.payload: letter for letter in letters}
    assert by_payload["{not json"].order_id == bad_key
    assert "invalid OrderFinalEvent" in by_payload["{not json"].error
    assert by_payload["{not json"].source_topic == writer.topic
    not_uuid = by_payload['{"order_id": "not-a-uuid", "status": "CONFIRMED"}']
    assert "order_id" in not_uuid.error
    assert not_uuid.order_id is None

    assert (await writer.http.get("/ready")).status_code == 200
    metrics = (await writer.http.get("/metrics")).text
    assert "foodflow_order_writer_dead_letters_total 2.0" in metrics
    assert 'foodflow_order_writer_rows_written_total{table="orders"} 2.0' in metrics
    assert "foodflow_order_writer_batch_write_seconds_count" in metrics


async def test_an_event_postgres_refuses_is_dead_lettered_and_the_rest_written(
    settings: Settings, writers: WriterFactory, producer: EventProducer, pg: asyncpg.Pool
) -> None:
    writer = await writers()
    good, refused = uuid4(), uuid4()
    # A quantity of 0 passes the contract but breaks order_items' CHECK (quantity > 0).
    await asyncio.gather(
        producer.publish(writer.topic, final_event(refused, quantity=0), key=str(refused)),
        producer.publish(writer.topic, final_event(good), key=str(good)),
    )
    await writer.handled(2)

    tables = await snapshot(pg, good, refused)
    assert {o["order_id"] for o in tables["orders"]} == {good}
    [letter] = await read_dead_letters(settings, writer.dead_letter_topic, 1)
    assert letter.order_id == refused
    assert "PostgreSQL rejected" in letter.error
    metrics = (await writer.http.get("/metrics")).text
    assert "foodflow_order_writer_rejects_total 1.0" in metrics


async def test_replaying_the_topic_leaves_the_tables_identical(
    writers: WriterFactory, producer: EventProducer, pg: asyncpg.Pool
) -> None:
    writer = await writers()
    ids = [uuid4() for _ in range(20)]
    await asyncio.gather(
        *(producer.publish(writer.topic, final_event(i, 3), key=str(i)) for i in ids),
        *(
            producer.publish(writer.topic, final_event(i, 4, OrderStatus.CANCELLED), key=str(i))
            for i in ids[:10]
        ),
    )
    await writer.handled(30)
    before = await snapshot(pg, *ids)
    assert len(before["orders"]) == 20

    # A second writer in a fresh consumer group reads the whole topic again.
    replay = await writers(writer.topic, writer.dead_letter_topic)
    await replay.handled(30)
    assert await snapshot(pg, *ids) == before


async def test_health_and_ready_report_the_consumer(writers: WriterFactory) -> None:
    writer = await writers()
    for _ in range(200):  # the consumer task starts just after the lifespan
        ready = await writer.http.get("/ready")
        if ready.status_code == 200:
            break
        await asyncio.sleep(0.05)
    assert ready.json() == {"status": "ready", "checks": {"postgres": True, "consumer": True}}
    assert (await writer.http.get("/health")).json() == {"status": "ok"}
    assert writer.runtime.consumer.running


async def test_writes_retry_while_postgres_is_unreachable_until_shutdown() -> None:
    # Nothing listens on port 1: every attempt is a connection error, as when PostgreSQL is down.
    pool = await asyncpg.create_pool("postgresql://user:password@127.0.0.1:1/x", min_size=0)
    assert pool is not None
    store = PostgresOrderStore(pool, base_backoff=0.01, max_backoff=0.05)
    try:
        write = asyncio.create_task(store.write([final_event(uuid4())]))
        await asyncio.sleep(0.5)
        assert not write.done()  # still retrying, not dropping the batch
        assert store.retries >= 3
        store.abort_retries()
        with pytest.raises(ServiceUnavailable):
            await write
        assert not await database_ready(pool)
    finally:
        await pool.close()
