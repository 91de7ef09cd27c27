"""Payment use cases over an in-memory ledger: idempotency and the flow, without a database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import pytest

from foodflow.contracts.payment import (
    AuthoriseRequest,
    DeclineCode,
    PaymentOperation,
    PaymentRequest,
    PaymentResult,
    PaymentState,
)
from foodflow.payment_service import services
from foodflow.payment_service.domain import (
    Payment,
    PaymentConflict,
    PaymentNotFound,
    ProviderTimeout,
)
from foodflow.payment_service.services import LedgerEntry, ProviderTiming, RecordedOperation

INSTANT = ProviderTiming(latency_seconds=0.0, slow_seconds=0.0)


class FakeLedger:
    """Payments and ledger entries in dicts; a transaction's writes land only when it ends
    without raising."""

    def __init__(self) -> None:
        self.payments: dict[UUID, Payment] = {}
        self.entries_by_key: dict[str, LedgerEntry] = {}
        self.transactions = 0

    @asynccontextmanager
    async def transaction(self, order_ids: Collection[UUID]) -> AsyncIterator[FakeTransaction]:
        tx = FakeTransaction(self)
        yield tx
        self.transactions += 1
        self.payments.update(tx.saved_payments)
        self.entries_by_key.update(tx.saved_entries)

    async def replay_many(self, keys: Collection[str]) -> dict[str, PaymentResult]:
        return {k: self.entries_by_key[k].result for k in keys if k in self.entries_by_key}

    async def get(self, order_id: UUID) -> Payment | None:
        return self.payments.get(order_id)

    async def entries(self, order_id: UUID) -> list[dict[str, object]]:
        return [
            {"idempotency_key": e.key, "operation": e.operation.value, "amount": e.moved_cents}
            for e in self.entries_by_key.values()
            if e.order_id == order_id
        ]


class FakeTransaction:
    def __init__(self, ledger: FakeLedger) -> None:
        self.ledger = ledger
        self.saved_payments: dict[UUID, Payment] = {}
        self.saved_entries: dict[str, LedgerEntry] = {}

    async def recorded(self, keys: Collection[str]) -> dict[str, RecordedOperation]:
        entries = self.ledger.entries_by_key
        return {
            k: RecordedOperation(entries[k].order_id, entries[k].operation, entries[k].result)
            for k in keys
            if k in entries
        }

    async def payments(self, order_ids: Collection[UUID]) -> dict[UUID, Payment]:
        return {i: self.ledger.payments[i] for i in order_ids if i in self.ledger.payments}

    async def save(self, payments: Sequence[Payment], entries: Sequence[LedgerEntry]) -> None:
        self.saved_payments.update((p.order_id, p) for p in payments)
        self.saved_entries.update((e.key, e) for e in entries)


def authorise_request(
    order_id: UUID, token: str = "tok_visa", cents: int = 4509, *, capture: bool = False
) -> AuthoriseRequest:
    return AuthoriseRequest(
        order_id=order_id,
        amount_cents=cents,
        card_token=token,
        idempotency_key=f"{order_id}:authorise",
        capture=capture,
    )


def op(order_id: UUID, name: str, cents: int | None = None) -> PaymentRequest:
    return PaymentRequest(
        order_id=order_id, idempotency_key=f"{order_id}:{name}", amount_cents=cents
    )


def no_late_work(work: Coroutine[Any, Any, None]) -> None:
    work.close()
    raise AssertionError("nothing should land late")


async def test_authorise_capture_refund_records_the_money_moved() -> None:
    ledger, order_id = FakeLedger(), uuid4()

    auth = await services.authorise(ledger, authorise_request(order_id), INSTANT)
    captured = await services.capture(ledger, op(order_id, "capture", 4000))
    refunded = await services.refund(ledger, op(order_id, "refund"))

    assert (auth.approved, auth.state) == (True, PaymentState.AUTHORISED)
    assert (captured.state, captured.captured_cents) == (PaymentState.CAPTURED, 4000)
    assert (refunded.state, refunded.refunded_cents) == (PaymentState.REFUNDED, 4000)
    assert [(e.operation, e.moved_cents) for e in ledger.entries_by_key.values()] == [
        (PaymentOperation.AUTHORISE, 4509),
        (PaymentOperation.CAPTURE, 4000),
        (PaymentOperation.REFUND, 4000),
    ]
    payment, entries = await services.payment_record(ledger, order_id)
    assert payment.state is PaymentState.REFUNDED
    assert len(entries) == 3


async def test_a_repeated_key_gets_the_recorded_answer_and_changes_nothing() -> None:
    ledger, order_id = FakeLedger(), uuid4()
    await services.authorise(ledger, authorise_request(order_id), INSTANT)
    await services.capture(ledger, op(order_id, "capture"))
    first = await services.refund(ledger, op(order_id, "refund", 500))

    again = await services.refund(ledger, op(order_id, "refund", 500))

    assert again == first
    assert ledger.payments[order_id].refunded_cents == 500
    assert len(ledger.entries_by_key) == 3


async def test_a_key_reused_for_another_operation_is_a_conflict() -> None:
    ledger, order_id = FakeLedger(), uuid4()
    await services.authorise(ledger, authorise_request(order_id), INSTANT)
    await services.capture(ledger, op(order_id, "capture"))

    with pytest.raises(PaymentConflict, match="was used for CAPTURE"):
        await services.refund(ledger, op(order_id, "capture"))


async def test_a_decline_is_an_answer_and_cannot_be_captured() -> None:
    ledger, order_id = FakeLedger(), uuid4()

    declined = await services.authorise(
        ledger, authorise_request(order_id, "tok_declined"), INSTANT
    )

    assert (declined.approved, declined.decline_code) == (False, DeclineCode.CARD_DECLINED)
    with pytest.raises(PaymentConflict):
        await services.capture(ledger, op(order_id, "capture"))
    assert len(ledger.entries_by_key) == 1


async def test_capture_refund_without_payment_is_not_found_and_writes_nothing() -> None:
    ledger, order_id = FakeLedger(), uuid4()

    with pytest.raises(PaymentNotFound):
        await services.capture(ledger, op(order_id, "capture"))
    with pytest.raises(PaymentNotFound):
        await services.refund(ledger, op(order_id, "refund"))
    with pytest.raises(PaymentNotFound):
        await services.payment_record(ledger, order_id)
    assert ledger.entries_by_key == {} and ledger.payments == {}


async def test_a_void_before_the_authorisation_blocks_it() -> None:
    ledger, order_id = FakeLedger(), uuid4()

    voided = await services.void(ledger, op(order_id, "void"))
    late = await services.authorise(ledger, authorise_request(order_id), INSTANT)

    assert voided.state is PaymentState.VOIDED
    assert (late.approved, late.decline_code) == (False, DeclineCode.VOIDED)


async def test_authorise_with_capture_answers_with_the_capture() -> None:
    ledger, order_id = FakeLedger(), uuid4()

    answer = await services.authorise(ledger, authorise_request(order_id, capture=True), INSTANT)
    again = await services.authorise(ledger, authorise_request(order_id, capture=True), INSTANT)

    assert (answer.operation, answer.state) == (PaymentOperation.CAPTURE, PaymentState.CAPTURED)
    assert again == answer
    assert set(ledger.entries_by_key) == {f"{order_id}:authorise", f"{order_id}:authorise:capture"}


async def test_a_batch_answers_each_order_in_one_transaction() -> None:
    ledger = FakeLedger()
    approved, declined, repeated = uuid4(), uuid4(), uuid4()
    await services.authorise(ledger, authorise_request(repeated), INSTANT)
    transactions = ledger.transactions

    answers = await services.authorise_many(
        ledger,
        [
            authorise_request(approved, capture=True),
            authorise_request(declined, "tok_insufficient_funds", capture=True),
            authorise_request(repeated),
            authorise_request(approved, capture=True),
        ],
        INSTANT,
        no_late_work,
    )

    assert ledger.transactions == transactions + 1
    states = [a.state for a in answers if isinstance(a, PaymentResult)]
    assert states == [
        PaymentState.CAPTURED,
        PaymentState.DECLINED,
        PaymentState.AUTHORISED,
        PaymentState.CAPTURED,
    ]
    assert answers[0] == answers[3]
    captures = await services.capture_many(
        ledger, [op(repeated, "capture"), op(declined, "capture"), op(uuid4(), "capture")]
    )
    assert isinstance(captures[0], PaymentResult) and captures[0].state is PaymentState.CAPTURED
    assert isinstance(captures[1], PaymentConflict)
    assert isinstance(captures[2], PaymentNotFound)


async def test_a_slow_card_times_out_at_once_and_its_authorisation_lands_later() -> None:
    ledger, slow, fast = FakeLedger(), uuid4(), uuid4()
    late: list[Coroutine[Any, Any, None]] = []

    answers = await services.authorise_many(
        ledger,
        [authorise_request(slow, "tok_timeout"), authorise_request(fast)],
        INSTANT,
        late.append,
    )

    assert isinstance(answers[0], ProviderTimeout)
    assert isinstance(answers[1], PaymentResult) and answers[1].approved
    assert slow not in ledger.payments
    await asyncio.gather(*late)
    assert ledger.payments[slow].state is PaymentState.AUTHORISED


async def test_an_empty_batch_opens_no_transaction() -> None:
    ledger = FakeLedger()
    assert await services.apply_many(ledger, []) == []
    assert ledger.transactions == 0


def test_the_providers_latency_has_its_median_and_its_tail() -> None:
    """Each authorisation draws its own latency: half under the median, 1 in 100 over the
    median times the tail."""
    timing = ProviderTiming(latency_seconds=0.3, slow_seconds=10.0, tail=3.0)
    samples = sorted(timing.latency() for _ in range(40_000))
    assert samples[20_000] == pytest.approx(0.3, rel=0.05)
    assert samples[39_600] == pytest.approx(0.9, rel=0.1)
    assert all(s > 0 for s in samples)
    steady = ProviderTiming(latency_seconds=0.3, slow_seconds=10.0)  # tail 1: no spread
    assert {round(steady.latency(), 9) for _ in range(100)} == {0.3}
    assert ProviderTiming(latency_seconds=0.0, slow_seconds=10.0, tail=3.0).latency() == 0.0


def test_authorisations_asked_at_once_take_the_slowest_of_their_latencies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn = iter([0.2, 0.7, 0.4])
    monkeypatch.setattr(ProviderTiming, "latency", lambda self: next(drawn))
    timing = ProviderTiming(latency_seconds=0.3, slow_seconds=10.0, tail=3.0)
    assert timing.slowest(3) == 0.7  # not their sum
    assert timing.slowest(0) == 0.0
    assert ProviderTiming(latency_seconds=0.0, slow_seconds=10.0).slowest(5) == 0.0


@dataclass(frozen=True)
class AskedTiming(ProviderTiming):
    """Records how many authorisations each wait was for, and waits for none."""

    asked: list[int] = field(default_factory=list)

    async def answer(self, count: int) -> None:
        self.asked.append(count)


async def test_the_provider_is_asked_once_per_batch_for_the_new_authorisations_only() -> None:
    """A batch waits once for the provider, for the authorisations it had not answered yet:
    replays are answered from the ledger without asking it."""
    timing = AskedTiming(latency_seconds=0.3, slow_seconds=10.0, tail=3.0)
    ledger, repeated = FakeLedger(), uuid4()
    await services.authorise(ledger, authorise_request(repeated), timing)
    assert timing.asked == [1]

    await services.authorise_many(
        ledger,
        [authorise_request(uuid4()), authorise_request(repeated), authorise_request(uuid4())],
        timing,
        no_late_work,
    )
    assert timing.asked == [1, 2]
