"""The writer's use case over a fake store (a refused batch is split so only culprits drop), and
the store's retries over a pool that fails."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast
from uuid import uuid4

import asyncpg
import pytest
from confluent_kafka import Message

from foodflow.contracts.orders import OrderFinalEvent, OrderStatus, PricedItem, StatusChange
from foodflow.order_writer.handler import PersistFinalOrders
from foodflow.order_writer.metrics import WriterMetrics
from foodflow.order_writer.services import OrdersRefused, write_final_orders
from foodflow.order_writer.store import PostgresOrderStore
from foodflow.orders.records import WriteResult
from foodflow.platform.errors import ServiceUnavailable
from foodflow.platform.kafka.dlq import DeadLetterPublisher
from foodflow.platform.kafka.producer import EventProducer

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def event(quantity: int = 1) -> OrderFinalEvent:
    return OrderFinalEvent(
        order_id=uuid4(),
        user_id="user-001",
        status=OrderStatus.FAILED,
        version=1,
        created_at=T0,
        updated_at=T0,
        items=[PricedItem(item_id="pho-bo", quantity=quantity)],
        history=[StatusChange(status=OrderStatus.FAILED, version=1, at=T0)],
    )


class FakeStore:
    """Refuses any batch holding an order with a line of quantity 0, like the CHECK does."""

    def __init__(self) -> None:
        self.written: list[OrderFinalEvent] = []
        self.calls = 0

    async def write(self, events: Sequence[OrderFinalEvent]) -> WriteResult:
        self.calls += 1
        if any(item.quantity <= 0 for e in events for item in e.items):
            raise OrdersRefused('new row violates check constraint "order_items_quantity_check"')
        self.written += events
        return WriteResult(
            orders_written=list(events),
            item_rows=sum(len(e.items) for e in events),
            history_rows=sum(len(e.history) for e in events),
        )


async def test_a_clean_batch_is_one_write() -> None:
    store = FakeStore()
    events = [event(), event()]
    result, refused = await write_final_orders(store, events)
    assert store.calls == 1 and refused == []
    assert result.orders_written == events and result.item_rows == 2 and result.history_rows == 2


async def test_a_refused_batch_is_written_one_by_one_and_only_the_culprit_is_refused() -> None:
    store = FakeStore()
    good, bad, also_good = event(), event(quantity=0), event(2)
    result, refused = await write_final_orders(store, [good, bad, also_good])
    assert store.written == [good, also_good]
    assert result.orders_written == [good, also_good] and result.item_rows == 2
    [(culprit, why)] = refused
    assert culprit is bad
    assert why.startswith("PostgreSQL rejected the order: ") and "check constraint" in why
    assert store.calls == 4


async def test_nothing_to_write_is_no_refusal() -> None:
    result, refused = await write_final_orders(FakeStore(), [])
    assert result == WriteResult() and refused == []


class UnreachablePool:
    """A pool whose every connection attempt fails (as with PostgreSQL down), or raises `error`."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.attempts = 0

    def acquire(self, timeout: float | None = None) -> object:
        self.attempts += 1
        raise self.error


async def test_the_store_retries_until_aborted_and_abort_ends_a_long_wait_at_once() -> None:
    pool = UnreachablePool(ConnectionRefusedError("connect call failed"))
    # A wait of up to a minute after each failure: only abort_retries() ends this test quickly.
    store = PostgresOrderStore(pool, base_backoff=60.0, max_backoff=60.0)
    write = asyncio.create_task(store.write([event()]))
    for _ in range(100):
        if store.retries:
            break
        await asyncio.sleep(0.01)
    assert store.retries == 1 and not write.done()
    store.abort_retries()
    async with asyncio.timeout(1):
        with pytest.raises(ServiceUnavailable):
            await write
    assert pool.attempts == 1


async def test_the_store_does_not_retry_data_postgres_refuses() -> None:
    refusal = asyncpg.CheckViolationError("violates check constraint")
    pool = UnreachablePool(refusal)
    store = PostgresOrderStore(pool)
    with pytest.raises(OrdersRefused, match="violates check constraint"):
        await store.write([event()])
    assert pool.attempts == 1 and store.retries == 0


class FakeMessage:
    def __init__(self, value: bytes, offset: int) -> None:
        self._value, self._offset = value, offset

    def value(self) -> bytes:
        return self._value

    def key(self) -> None:
        return None

    def topic(self) -> str:
        return "db_write_order_status"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


class LetterBox:
    def __init__(self) -> None:
        self.letters: list[object] = []

    async def publish(self, topic: str, value: object, key: str | None = None) -> None:
        self.letters.append(value)


async def test_a_refused_order_is_one_reject_and_one_letter_however_often_its_batch_runs() -> None:
    box, metrics = LetterBox(), WriterMetrics()
    persist = PersistFinalOrders(
        FakeStore(), DeadLetterPublisher(cast(EventProducer, box)), metrics
    )
    batch = [
        cast(Message, FakeMessage(event(quantity=0).model_dump_json().encode(), 0)),
        cast(Message, FakeMessage(event().model_dump_json().encode(), 1)),
    ]
    await persist(batch)
    await persist(batch)  # handed back after an outage further on, or bisected
    assert len(box.letters) == 1
    sample = metrics.registry.get_sample_value
    assert sample("foodflow_order_writer_rejects_total") == 1
    assert sample("foodflow_order_writer_dead_letters_total") == 1
