from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID, uuid4

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from foodflow.contracts import topics
from foodflow.contracts.orders import (
    FailureReason,
    OrderFinalEvent,
    OrderSnapshot,
    OrderStatus,
    OrderStatusUpdate,
    StatusChange,
)
from foodflow.order_manager.intake import OrderIntake, published_at
from foodflow.order_manager.messages import Accepted, InvalidMessage, read_order
from foodflow.order_manager.saga import OrderSaga
from foodflow.orders.lifecycle import Order
from foodflow.orders.status_store import SaveOutcome
from foodflow.platform.kafka.dlq import DeadLetterPublisher
from foodflow.platform.kafka.producer import EventProducer

SEED_LINE = (
    b'{"user_id": "user-001", "items": [{"item_id": "sushi-set", "quantity": 1, "price": 25.50},'
    b' {"item_id": "pho-bo", "quantity": 2, "price": 9.00}]}'
)


def test_the_seed_line_is_accepted_and_gets_a_stable_id() -> None:
    first = read_order(SEED_LINE, "validated_orders", 0, 7)
    again = read_order(SEED_LINE, "validated_orders", 0, 7)
    assert isinstance(first, Accepted) and isinstance(again, Accepted)
    assert first.id_assigned and first.order_id == again.order_id
    assert [i.quantity for i in first.order.items] == [1, 2]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "empty"),
        (b"not json", "invalid order"),
        (b"[1, 2]", "invalid order"),
        (b'{"user_id": "u", "items": []}', "items"),
        (b'{"user_id": "u", "items": [{"item_id": "x", "quantity": 0}]}', "quantity"),
        (b'{"user_id": "u", "items": [{"item_id": "x", "quantity": -3}]}', "quantity"),
        (b'{"user_id": "u", "items": [{"item_id": "x", "quantity": 100000}]}', "quantity"),
        (b'{"user_id": "u", "items": [{"item_id": "x", "quantity": "2"}]}', "quantity"),
        (b'{"items": [{"item_id": "x", "quantity": 1}]}', "user_id"),
        (
            b'{"user_id": "u", "items": [{"item_id": "x", "quantity": 1},'
            b' {"item_id": "x", "quantity": 1}]}',
            "only once",
        ),
        (b"x" * 70000, "exceeds"),
    ],
)
def test_bad_messages_are_rejected_with_a_reason(raw: bytes, fragment: str) -> None:
    result = read_order(raw, "validated_orders", 0, 1)
    assert isinstance(result, InvalidMessage)
    assert fragment in result.error


def test_a_bad_order_with_an_id_becomes_a_failed_invalid_order_event() -> None:
    order_id = uuid4()
    raw = f'{{"order_id": "{order_id}", "user_id": "u-9", "items": "lots"}}'.encode()
    result = read_order(raw, "validated_orders", 0, 1)
    assert isinstance(result, InvalidMessage) and result.order_id == order_id
    event = Order.reject(result.order_id, result.user_id or "unknown", result.error)
    assert (event.status, event.reason, event.version, event.user_id) == (
        "FAILED",
        "INVALID_ORDER",
        1,
        "u-9",
    )


def test_a_rejected_order_event_is_the_one_built_by_hand_before() -> None:
    """Same JSON, field for field, as the event the order manager used to assemble itself."""
    order_id, at = uuid4(), datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
    by_hand = OrderFinalEvent(
        order_id=order_id,
        user_id="unknown",
        status=OrderStatus.FAILED,
        version=1,
        reason=FailureReason.INVALID_ORDER,
        detail="invalid order: items: Input should be a valid list",
        created_at=at,
        updated_at=at,
        items=[],
        history=[
            StatusChange(
                status=OrderStatus.FAILED, version=1, at=at, reason=FailureReason.INVALID_ORDER
            )
        ],
    )
    rejected = Order.reject(order_id, "unknown", by_hand.detail or "", at=at)
    assert rejected.model_dump_json() == by_hand.model_dump_json()
    assert rejected.status_update().model_dump_json() == by_hand.status_update().model_dump_json()


class FakeMessage:
    def __init__(self, value: bytes, offset: int = 5, timestamp: tuple[int, int] = (0, -1)) -> None:
        self._value, self._offset, self._timestamp = value, offset, timestamp

    def timestamp(self) -> tuple[int, int]:
        return self._timestamp

    def value(self) -> bytes:
        return self._value

    def topic(self) -> str:
        return "validated_orders"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


class Parked:
    def __init__(self) -> None:
        self.letters: list[tuple[str, Any]] = []

    async def publish(self, topic: str, value: Any, key: str | None = None) -> None:
        self.letters.append((topic, value))


class OneVersionStore:
    def __init__(self) -> None:
        self.saved: dict[UUID, OrderSnapshot] = {}

    async def save(self, update: OrderSnapshot, request: Any = None) -> SaveOutcome:
        stored = self.saved.get(update.order_id)
        if stored is None:
            self.saved[update.order_id] = update
            return SaveOutcome.WRITTEN
        same = (stored.version, stored.status) == (update.version, update.status)
        return SaveOutcome.ALREADY_THERE if same else SaveOutcome.CONFLICT

    async def load_snapshot(self, order_id: UUID | str) -> OrderSnapshot | None:
        return self.saved.get(UUID(str(order_id)))


async def test_an_unreadable_order_with_an_id_is_parked_and_announced_failed() -> None:
    order_id = uuid4()
    raw = f'{{"order_id": "{order_id}", "user_id": "u-9", "items": "lots"}}'.encode()
    parked, store = Parked(), OneVersionStore()
    announced: list[tuple[OrderStatusUpdate, OrderFinalEvent | None]] = []

    async def announce(update: OrderStatusUpdate, final: OrderFinalEvent | None) -> None:
        announced.append((update, final))

    # The saga is never reached: the message is refused before an order exists.
    intake = OrderIntake(
        cast(OrderSaga, None),
        DeadLetterPublisher(cast(EventProducer, parked)),
        store,
        announce,
        max_in_flight=10,
    )
    message = cast(Message, FakeMessage(raw))
    await intake.handle_batch([message])
    await intake.handle_batch([message])  # redelivered: the same event again, no second letter
    assert [topic for topic, _ in parked.letters] == [topics.DEAD_LETTER]
    assert [(u.status, u.version, u.user_id) for u, _ in announced] == [("FAILED", 1, "u-9")] * 2
    finals = [f for _, f in announced if f is not None]
    assert len(finals) == 2 and finals[0].model_dump_json() == finals[1].model_dump_json()
    assert store.saved[order_id].reason == FailureReason.INVALID_ORDER


class RecordingSaga:
    def __init__(self) -> None:
        self.runs: list[tuple[UUID, datetime | None]] = []

    async def run(self, order_id: UUID, request: Any, published_at: datetime | None = None) -> None:
        self.runs.append((order_id, published_at))


async def test_the_kafka_timestamp_of_an_order_reaches_its_saga() -> None:
    """The dashboard's latency starts when the order was published, not when it was read: the
    message's create time is handed to the saga, which puts it on every status event."""
    saga = RecordingSaga()
    intake = OrderIntake(
        cast(OrderSaga, saga),
        DeadLetterPublisher(cast(EventProducer, Parked())),
        OneVersionStore(),
        cast(Any, None),
        max_in_flight=10,
    )
    at_ms = 1_796_000_000_123
    stamped = FakeMessage(SEED_LINE, offset=1, timestamp=(TIMESTAMP_CREATE_TIME, at_ms))
    unstamped = FakeMessage(SEED_LINE, offset=2)
    await intake.handle_batch([cast(Message, stamped), cast(Message, unstamped)])
    assert [at for _, at in saga.runs] == [datetime.fromtimestamp(at_ms / 1000, UTC), None]
    assert (
        published_at(cast(Message, FakeMessage(b"", timestamp=(TIMESTAMP_CREATE_TIME, 0)))) is None
    )


async def test_a_rejected_order_carries_its_publish_time_too() -> None:
    order_id = uuid4()
    raw = f'{{"order_id": "{order_id}", "user_id": "u-9", "items": "lots"}}'.encode()
    announced: list[OrderStatusUpdate] = []

    async def announce(update: OrderStatusUpdate, final: OrderFinalEvent | None) -> None:
        announced.append(update)

    intake = OrderIntake(
        cast(OrderSaga, None),
        DeadLetterPublisher(cast(EventProducer, Parked())),
        OneVersionStore(),
        announce,
        max_in_flight=10,
    )
    await intake.handle_batch([cast(Message, FakeMessage(raw, timestamp=(1, 1_796_000_000_000)))])
    assert announced[0].published_at == datetime.fromtimestamp(1_796_000_000, UTC)
