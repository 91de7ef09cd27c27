"""The order writer's pure parts: parsing, batch reduction, column building, error triage."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import asyncpg
import pytest
from confluent_kafka import Message

from foodflow.contracts.orders import (
    FailureReason,
    OrderFinalEvent,
    OrderStatus,
    PricedItem,
    StatusChange,
)
from foodflow.contracts.pricing import PriceBreakdown
from foodflow.order_writer.domain import Rejected, parse_message, reduce_batch
from foodflow.order_writer.store import is_transient
from foodflow.orders.records import history_columns, item_columns, order_columns
from foodflow.platform.kafka._logging import RepeatThrottle
from foodflow.platform.kafka.consumer import next_offsets
from foodflow.platform.kafka.dlq import dead_letter_for

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def step_status(step: int, version: int, final: OrderStatus) -> OrderStatus:
    if step == version:
        return final
    return OrderStatus.RECEIVED if step == 1 else OrderStatus.PROCESSING


def event(
    order_id: UUID | None = None, version: int = 3, status: OrderStatus = OrderStatus.CONFIRMED
) -> OrderFinalEvent:
    order_id = order_id or uuid4()
    return OrderFinalEvent(
        order_id=order_id,
        user_id="user-001",
        status=status,
        version=version,
        price=PriceBreakdown(
            subtotal=Decimal("43.50"),
            discount=Decimal("0.00"),
            delivery_fee=Decimal("2.99"),
            small_order_fee=Decimal("0.00"),
            tax=Decimal("0.00"),
            total=Decimal("46.49"),
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
        ],
        history=[
            StatusChange(status=step_status(v, version, status), version=v, at=T0 + timedelta(v))
            for v in range(1, version + 1)
        ],
    )


def test_reduce_keeps_the_highest_version_per_order() -> None:
    a, b = uuid4(), uuid4()
    batch = [event(a, 2), event(b, 3), event(a, 4), event(a, 3), event(b, 1)]
    reduced = reduce_batch(batch)
    assert {(e.order_id, e.version) for e in reduced} == {(a, 4), (b, 3)}
    assert len(reduced) == 2


def test_reduce_keeps_the_first_of_equal_versions() -> None:
    order_id = uuid4()
    first, second = event(order_id, 3), event(order_id, 3)
    assert reduce_batch([first, second])[0] is first


def test_reduce_sorts_by_order_id_for_a_stable_lock_order() -> None:
    ids = [uuid4() for _ in range(20)]
    reduced = reduce_batch(event(i) for i in ids)
    assert [e.order_id for e in reduced] == sorted(ids, key=lambda u: u.bytes)
    assert reduce_batch([]) == []


def test_parse_accepts_a_final_event() -> None:
    original = event()
    parsed = parse_message(original.model_dump_json().encode(), str(original.order_id).encode())
    assert parsed == original


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (None, "empty message"),
        (b"", "empty message"),
        (b"not json", "invalid OrderFinalEvent"),
        (b'{"order_id": "nope"}', "order_id"),
        (b"\xff\xfe", "invalid OrderFinalEvent"),
    ],
)
def test_parse_rejects_garbage_with_a_reason(value: bytes | None, fragment: str) -> None:
    order_id = uuid4()
    rejected = parse_message(value, str(order_id).encode())
    assert isinstance(rejected, Rejected)
    assert fragment in rejected.error
    assert rejected.order_id == order_id


def test_parse_ignores_a_key_that_is_not_an_order_id() -> None:
    rejected = parse_message(b"{}", b"\xffnot-a-uuid")
    assert isinstance(rejected, Rejected)
    assert rejected.order_id is None


def test_columns_line_up_with_the_sql_parameters() -> None:
    priced = event(version=3)
    unpriced = event(version=3, status=OrderStatus.FAILED).model_copy(
        update={"price": None, "reason": FailureReason.OUT_OF_STOCK}
    )
    orders = order_columns([priced, unpriced])
    assert len(orders) == 17
    assert all(len(column) == 2 for column in orders)
    assert orders[0] == [priced.order_id, unpriced.order_id]
    assert orders[2] == ["CONFIRMED", "FAILED"]
    assert orders[3] == [None, "OUT_OF_STOCK"]
    assert orders[11] == [Decimal("46.49"), None]  # total
    assert orders[14][1] is None  # price_breakdown JSON

    items = item_columns([priced])
    assert items == [[priced.order_id], ["sushi-set"], [1], [Decimal("25.50")], [Decimal("25.50")]]

    history = history_columns([priced])
    assert history[1] == [1, 2, 3]
    assert history[2] == ["RECEIVED", "PROCESSING", "CONFIRMED"]


def test_transient_errors_are_connection_and_shutdown_not_bad_data() -> None:
    assert is_transient(ConnectionRefusedError())
    assert is_transient(TimeoutError())
    assert is_transient(asyncpg.exceptions.AdminShutdownError())
    assert is_transient(asyncpg.exceptions.CannotConnectNowError())
    assert is_transient(asyncpg.exceptions.DeadlockDetectedError())
    assert is_transient(asyncpg.exceptions.ConnectionDoesNotExistError())
    assert not is_transient(asyncpg.exceptions.CheckViolationError())
    assert not is_transient(asyncpg.exceptions.NumericValueOutOfRangeError())
    assert not is_transient(ValueError())
    assert is_transient(asyncpg.InterfaceError("pool is closing"))
    # asyncpg's own DataError (an InterfaceError too) is an argument it cannot encode.
    assert not is_transient(asyncpg.exceptions._base.DataError("invalid input for $1"))


def test_next_offsets_are_one_past_the_highest_per_partition() -> None:
    batch = [
        Message(topic="t", partition=0, offset=4),
        Message(topic="t", partition=0, offset=7),
        Message(topic="t", partition=1, offset=2),
    ]
    committed = {(tp.topic, tp.partition): tp.offset for tp in next_offsets(batch)}
    assert committed == {("t", 0): 8, ("t", 1): 3}


def test_dead_letter_keeps_the_exact_bytes_and_the_origin() -> None:
    msg = Message(topic="db_write_order_status", partition=2, offset=41, value=b"\xffoops")
    order_id = uuid4()
    letter = dead_letter_for(msg, "invalid", order_id)
    assert letter.source_topic == "db_write_order_status"
    assert (letter.source_partition, letter.source_offset) == (2, 41)
    assert letter.payload == "\ufffdoops"
    assert letter.payload_base64 == "/29vcHM="
    assert letter.order_id == order_id
    assert letter.error == "invalid"


def test_librdkafka_reconnect_noise_is_throttled() -> None:
    throttle = RepeatThrottle(interval=60)

    def record(text: str) -> logging.LogRecord:
        return logging.LogRecord(
            "x", logging.ERROR, "", 0, "%s [%s] %s", ("FAIL", "rdkafka#producer-1", text), None
        )

    assert throttle.filter(record("Connect failed (after 0ms)"))
    assert not throttle.filter(record("Connect failed (after 1ms)"))
    other = logging.LogRecord("x", logging.ERROR, "", 0, "%s [%s] %s", ("FAIL", "c-2", "x"), None)
    assert throttle.filter(other)
