"""The payment service compensating failed orders itself (`compensate_failed`, and its Kafka
handler), over the in-memory ledger of test_payment_services: the saga's keys, once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from confluent_kafka import Message, TopicPartition
from prometheus_client import REGISTRY

from foodflow.contracts.orders import (
    FailureReason,
    OrderFinalEvent,
    OrderStatus,
    StatusChange,
)
from foodflow.contracts.payment import PaymentOperation, PaymentState
from foodflow.contracts.pricing import PriceBreakdown
from foodflow.payment_service import services
from foodflow.payment_service.domain import Payment, compensation_for
from foodflow.payment_service.final_orders import CompensateFailedOrders, failed_order
from foodflow.payment_service.services import FailedOrder
from foodflow.platform.kafka.dlq import DeadLetterPublisher

from .test_payment_services import INSTANT, FakeLedger, authorise_request, op

T0 = datetime(2025, 3, 1, 18, 30, tzinfo=UTC)


async def charged(ledger: FakeLedger, order_id: UUID) -> None:
    """As the saga charges: authorise with capture, key `<order_id>:authorise`."""
    answer = await services.authorise(ledger, authorise_request(order_id, capture=True), INSTANT)
    assert answer.state is PaymentState.CAPTURED


def failed(order_id: UUID, *, asked: bool = True) -> FailedOrder:
    return FailedOrder(order_id, asked_for_payment=asked)


def keys_of(ledger: FakeLedger, order_id: UUID) -> list[tuple[str, PaymentOperation, int]]:
    return [
        (e.key, e.operation, e.moved_cents)
        for e in ledger.entries_by_key.values()
        if e.order_id == order_id
    ]


async def test_a_failed_order_with_a_capture_is_refunded_once_with_the_saga_key() -> None:
    ledger, order_id = FakeLedger(), uuid4()
    await charged(ledger, order_id)

    done = await services.compensate_failed(ledger, [failed(order_id)])
    again = await services.compensate_failed(ledger, [failed(order_id)])  # redelivered

    assert [(c.order_id, c.operation) for c in done] == [(order_id, PaymentOperation.REFUND)]
    assert again == []
    payment = ledger.payments[order_id]
    assert (payment.state, payment.captured_cents, payment.refunded_cents) == (
        PaymentState.REFUNDED,
        4509,
        4509,
    )
    assert keys_of(ledger, order_id)[-1] == (f"{order_id}:refund", PaymentOperation.REFUND, 4509)
    assert len(keys_of(ledger, order_id)) == 3  # authorise, capture, one refund


async def test_a_failed_order_with_an_open_authorisation_is_voided() -> None:
    ledger, order_id = FakeLedger(), uuid4()
    await services.authorise(ledger, authorise_request(order_id), INSTANT)

    done = await services.compensate_failed(ledger, [failed(order_id)])

    assert [c.operation for c in done] == [PaymentOperation.VOID]
    assert ledger.payments[order_id].state is PaymentState.VOIDED
    assert keys_of(ledger, order_id)[-1] == (f"{order_id}:void", PaymentOperation.VOID, 0)


async def test_what_the_saga_refunded_already_is_not_refunded_again() -> None:
    ledger, order_id = FakeLedger(), uuid4()
    await charged(ledger, order_id)
    await services.refund(ledger, op(order_id, "refund"))  # the saga's `_undo_payment`
    before = dict(ledger.entries_by_key)

    done = await services.compensate_failed(ledger, [failed(order_id)])

    assert done == []
    assert ledger.entries_by_key == before
    assert ledger.payments[order_id].refunded_cents == 4509


async def test_a_refund_racing_under_the_saga_key_is_one_refund() -> None:
    """The saga's refund lands first, but it was a partial one under the same key (never the
    saga's way, just the key's rule): the key is spent, nothing is refunded twice."""
    ledger, order_id = FakeLedger(), uuid4()
    await charged(ledger, order_id)
    await services.refund(ledger, op(order_id, "refund", 1000))

    assert await services.compensate_failed(ledger, [failed(order_id)]) == []
    assert ledger.payments[order_id].refunded_cents == 1000


async def test_what_the_saga_voided_already_is_left_as_it_is() -> None:
    ledger, order_id = FakeLedger(), uuid4()
    await services.authorise(ledger, authorise_request(order_id), INSTANT)
    await services.void(ledger, op(order_id, "void"))
    before = dict(ledger.entries_by_key)

    assert await services.compensate_failed(ledger, [failed(order_id)]) == []
    assert ledger.entries_by_key == before


async def test_a_declined_payment_and_an_order_that_never_paid_get_nothing() -> None:
    ledger, declined, unpaid = FakeLedger(), uuid4(), uuid4()
    await services.authorise(ledger, authorise_request(declined, "tok_declined"), INSTANT)

    done = await services.compensate_failed(ledger, [failed(declined), failed(unpaid, asked=False)])

    assert done == []
    assert ledger.payments[declined].state is PaymentState.DECLINED
    assert unpaid not in ledger.payments
    assert len(ledger.entries_by_key) == 1


async def test_a_failed_order_that_asked_for_payment_blocks_a_late_authorisation() -> None:
    ledger, order_id = FakeLedger(), uuid4()

    done = await services.compensate_failed(ledger, [failed(order_id)])
    late = await services.authorise(ledger, authorise_request(order_id, capture=True), INSTANT)

    assert [c.operation for c in done] == [PaymentOperation.VOID]
    assert (late.approved, late.state, late.captured_cents) == (False, PaymentState.VOIDED, 0)


async def test_many_orders_are_compensated_in_one_transaction() -> None:
    ledger, refunded, voided = FakeLedger(), uuid4(), uuid4()
    await charged(ledger, refunded)
    await services.authorise(ledger, authorise_request(voided), INSTANT)
    transactions = ledger.transactions

    done = await services.compensate_failed(
        ledger, [failed(refunded), failed(voided), failed(refunded)]
    )

    assert ledger.transactions == transactions + 1
    assert {(c.order_id, c.operation) for c in done} == {
        (refunded, PaymentOperation.REFUND),
        (voided, PaymentOperation.VOID),
    }


@pytest.mark.parametrize(
    ("payment", "expected"),
    [
        (None, None),
        (Payment(uuid4(), PaymentState.AUTHORISED, 100), PaymentOperation.VOID),
        (Payment(uuid4(), PaymentState.CAPTURED, 100, captured_cents=90), PaymentOperation.REFUND),
        (
            Payment(uuid4(), PaymentState.CAPTURED, 100, captured_cents=90, refunded_cents=40),
            PaymentOperation.REFUND,
        ),
        (
            Payment(uuid4(), PaymentState.REFUNDED, 100, captured_cents=100, refunded_cents=100),
            None,
        ),
        (Payment(uuid4(), PaymentState.VOIDED, 100), None),
        (Payment(uuid4(), PaymentState.DECLINED, 100), None),
    ],
)
def test_what_undoes_a_payment(payment: Payment | None, expected: PaymentOperation | None) -> None:
    assert compensation_for(payment, may_land_late=False) is expected


# --- the Kafka handler ------------------------------------------------------------------------


def final_event(order_id: UUID, status: OrderStatus, *, priced: bool = True) -> OrderFinalEvent:
    steps = [OrderStatus.RECEIVED, *([OrderStatus.PROCESSING] if priced else []), status]
    return OrderFinalEvent(
        order_id=order_id,
        user_id="user-001",
        status=status,
        version=len(steps),
        reason=FailureReason.PAYMENT_UNAVAILABLE if status is OrderStatus.FAILED else None,
        price=PriceBreakdown(
            subtotal=Decimal("45.09"),
            discount=Decimal("0"),
            delivery_fee=Decimal("0"),
            small_order_fee=Decimal("0"),
            tax=Decimal("0"),
            total=Decimal("45.09"),
        )
        if priced
        else None,
        created_at=T0,
        history=[StatusChange(status=s, version=v, at=T0) for v, s in enumerate(steps, 1)],
    )


class FakeMessage:
    """What the handler reads of a Kafka message."""

    def __init__(self, value: bytes, offset: int, key: bytes | None = None) -> None:
        self._value, self._offset, self._key = value, offset, key

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def topic(self) -> str:
        return "db_write_order_status"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


class FakeDeadLetters(DeadLetterPublisher):
    def __init__(self) -> None:
        self.letters: list[tuple[int, str, UUID | None]] = []

    async def publish(self, msg: Message, error: str, order_id: UUID | None = None) -> bool:
        self.letters.append((msg.offset() or 0, error, order_id))
        return True

    def committed(self, offsets: Sequence[TopicPartition]) -> None:
        pass


def messages(*events: OrderFinalEvent | bytes) -> list[Message]:
    msgs: list[object] = [
        FakeMessage(e if isinstance(e, bytes) else e.model_dump_json().encode(), offset)
        for offset, e in enumerate(events)
    ]
    return msgs  # type: ignore[return-value]


def compensations(action: str) -> float:
    value = REGISTRY.get_sample_value("foodflow_payment_compensations_total", {"action": action})
    return value or 0.0


async def test_the_handler_refunds_failed_orders_only_and_once() -> None:
    ledger, dead_letters = FakeLedger(), FakeDeadLetters()
    handle = CompensateFailedOrders(ledger, dead_letters)
    orders = {status: uuid4() for status in OrderStatus.PERSISTED}
    for order_id in orders.values():
        await charged(ledger, order_id)
    refunds = compensations("refund")
    events = [final_event(order_id, status) for status, order_id in orders.items()]

    await handle(messages(*events))
    await handle(messages(*events))  # the batch redelivered

    for status, order_id in orders.items():
        payment = ledger.payments[order_id]
        expected = PaymentState.REFUNDED if status is OrderStatus.FAILED else PaymentState.CAPTURED
        assert (status, payment.state) == (status, expected)
    assert compensations("refund") == refunds + 1
    assert dead_letters.letters == []


async def test_a_failed_order_never_priced_leaves_no_tombstone() -> None:
    ledger = FakeLedger()
    order_id = uuid4()

    await CompensateFailedOrders(ledger, FakeDeadLetters())(
        messages(final_event(order_id, OrderStatus.FAILED, priced=False))
    )

    assert ledger.payments == {} and ledger.entries_by_key == {}
    assert failed_order(final_event(order_id, OrderStatus.FAILED)) == failed(order_id)


async def test_what_is_not_a_final_event_is_dead_lettered_and_the_rest_handled() -> None:
    ledger, dead_letters = FakeLedger(), FakeDeadLetters()
    order_id = uuid4()
    await charged(ledger, order_id)

    await CompensateFailedOrders(ledger, dead_letters)(
        messages(b"not json", final_event(order_id, OrderStatus.FAILED), b'{"status": "FAILED"}')
    )

    assert [
        (offset, "invalid OrderFinalEvent" in why) for offset, why, _ in dead_letters.letters
    ] == [
        (0, True),
        (2, True),
    ]
    assert ledger.payments[order_id].state is PaymentState.REFUNDED
