"""Use cases of the payment service over a ledger port: authorise, capture, void, refund.

Every operation carries the caller's idempotency key. The ledger records each operation's
answer under its key, so a repeated request gets the recorded answer and changes nothing.
Batches (the order manager sends authorise and capture in batches) run in one ledger
transaction with a fixed number of statements, whatever their size.

Handlers receive a ledger (anything shaped like `Ledger`), never a connection, so the same
code runs against PostgreSQL in the service and against a fake in a unit test.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable, Collection, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Protocol
from uuid import UUID

from prometheus_client import Histogram

from foodflow.contracts.payment import (
    AuthoriseRequest,
    PaymentOperation,
    PaymentRequest,
    PaymentResult,
)
from foodflow.payment_service.domain import (
    AuthorisationDecision,
    NothingToUndo,
    Payment,
    PaymentConflict,
    PaymentError,
    PaymentNotFound,
    ProviderTimeout,
    compensation_for,
    decide_authorisation,
)

log = logging.getLogger(__name__)
PROVIDER_SECONDS = Histogram(
    "foodflow_payment_provider_seconds",
    "The simulated provider's latency of each authorisation (PAYMENT_DELAY_SECONDS its median)",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5),
)

PaymentChange = Callable[[Payment | None], Payment]
# Starts work that outlives the request (an authorisation the provider answers late).
StartLate = Callable[[Coroutine[Any, Any, None]], None]


@dataclass(frozen=True)
class LedgerOperation:
    """One operation for `apply_many`: `change` maps the payment before to the payment after."""

    key: str
    operation: PaymentOperation
    order_id: UUID
    change: PaymentChange


@dataclass(frozen=True)
class RecordedOperation:
    """What the ledger holds under an idempotency key: the operation and its answer."""

    order_id: UUID
    operation: PaymentOperation
    result: PaymentResult


@dataclass(frozen=True)
class LedgerEntry:
    """A new ledger row: the operation, the money it moved and its answer."""

    key: str
    order_id: UUID
    operation: PaymentOperation
    moved_cents: int
    result: PaymentResult


class LedgerTransaction(Protocol):
    async def recorded(self, keys: Collection[str]) -> dict[str, RecordedOperation]: ...
    async def payments(self, order_ids: Collection[UUID]) -> dict[UUID, Payment]: ...
    async def save(self, payments: Sequence[Payment], entries: Sequence[LedgerEntry]) -> None: ...


class Ledger(Protocol):
    def transaction(
        self, order_ids: Collection[UUID]
    ) -> AbstractAsyncContextManager[LedgerTransaction]: ...
    async def replay_many(self, keys: Collection[str]) -> dict[str, PaymentResult]: ...
    async def get(self, order_id: UUID) -> Payment | None: ...
    async def entries(self, order_id: UUID) -> list[dict[str, object]]: ...


_Z99 = NormalDist().inv_cdf(0.99)  # a standard normal's 99th percentile (2.326)


@dataclass(frozen=True)
class ProviderTiming:
    """How long the simulated provider takes to answer an authorisation: each one on its own,
    from a log-normal distribution (a median and a long tail, as a card network's answers
    are), many at once."""

    latency_seconds: float  # the median of every authorisation's latency
    slow_seconds: float  # a card the provider answers too late for (`tok_timeout`)
    tail: float = 1.0  # the 99th percentile over the median (1: every answer takes the median)

    def latency(self) -> float:
        """One authorisation's latency, drawn afresh."""
        if self.latency_seconds <= 0:
            return 0.0
        sigma = math.log(self.tail) / _Z99
        return random.lognormvariate(math.log(self.latency_seconds), sigma)

    def slowest(self, count: int) -> float:
        """How long `count` authorisations asked at once take: each its own latency,
        concurrently, so the last answer comes after the slowest of them."""
        if count <= 0 or self.latency_seconds <= 0:
            return 0.0
        latencies = [self.latency() for _ in range(count)]
        for seconds in latencies:
            PROVIDER_SECONDS.observe(seconds)
        return max(latencies)

    async def answer(self, count: int) -> None:
        """Wait as the provider does for `count` authorisations asked at once."""
        seconds = self.slowest(count)
        if seconds > 0:
            await asyncio.sleep(seconds)


def _moved_cents(operation: PaymentOperation, before: Payment | None, after: Payment) -> int:
    if operation is PaymentOperation.AUTHORISE:
        return after.amount_cents if before is None else 0
    if operation is PaymentOperation.CAPTURE:
        return after.captured_cents - (before.captured_cents if before else 0)
    if operation is PaymentOperation.REFUND:
        return after.refunded_cents - (before.refunded_cents if before else 0)
    return 0


async def apply_many(
    ledger: Ledger, operations: Sequence[LedgerOperation]
) -> list[PaymentResult | PaymentError]:
    """Apply each operation once per idempotency key, in one transaction, one answer each.

    A key seen before returns the recorded answer (a conflict when it was recorded for another
    order or operation); operations on the same order apply in the batch's order. An
    operation's domain error is its answer and writes nothing; the others still apply.
    """
    return [answer for answer, _ in await _apply_all(ledger, operations)]


async def _apply_all(
    ledger: Ledger, operations: Sequence[LedgerOperation]
) -> list[tuple[PaymentResult | PaymentError, bool]]:
    """`apply_many`, each answer with whether it was written now (not replayed, not refused)."""
    if not operations:
        return []
    answers: list[tuple[PaymentResult | PaymentError, bool]] = []
    async with ledger.transaction({op.order_id for op in operations}) as tx:
        seen = await tx.recorded([op.key for op in operations])
        payments = await tx.payments(sorted({op.order_id for op in operations}))
        changed: dict[UUID, Payment] = {}
        entries: list[LedgerEntry] = []
        done: dict[str, PaymentResult] = {}
        for op in operations:
            recorded = seen.get(op.key)
            if recorded is not None:
                if recorded.order_id != op.order_id or recorded.operation is not op.operation:
                    conflict = PaymentConflict(
                        f"idempotency key {op.key!r} was used for {recorded.operation}"
                        f" of order {recorded.order_id}"
                    )
                    answers.append((conflict, False))
                else:
                    answers.append((recorded.result, False))
                continue
            if op.key in done:  # the same operation twice in one batch
                answers.append((done[op.key], False))
                continue
            before = payments.get(op.order_id)
            try:
                after = op.change(before)
            except PaymentError as exc:
                answers.append((exc, False))
                continue
            result = after.result(op.operation)
            payments[op.order_id] = changed[op.order_id] = after
            entries.append(
                LedgerEntry(
                    op.key,
                    op.order_id,
                    op.operation,
                    _moved_cents(op.operation, before, after),
                    result,
                )
            )
            done[op.key] = result
            answers.append((result, True))
        if changed:
            await tx.save(list(changed.values()), entries)
    return answers


async def apply(ledger: Ledger, operation: LedgerOperation) -> PaymentResult:
    """`apply_many` for one operation; its domain error is raised."""
    (answer,) = await apply_many(ledger, [operation])
    if isinstance(answer, PaymentError):
        raise answer
    return answer


def _existing(order_id: UUID) -> Callable[[Payment | None], Payment]:
    def need(current: Payment | None) -> Payment:
        if current is None:
            raise PaymentNotFound(order_id)
        return current

    return need


def _authorisation(body: AuthoriseRequest, decision: AuthorisationDecision) -> LedgerOperation:
    def authorise_once(current: Payment | None) -> Payment:
        # A payment already there (another key, or a void that came first) is the answer.
        return current if current is not None else Payment.authorised(body, decision)

    return LedgerOperation(
        body.idempotency_key, PaymentOperation.AUTHORISE, body.order_id, authorise_once
    )


def _capture(body: PaymentRequest, key: str | None = None) -> LedgerOperation:
    need = _existing(body.order_id)
    return LedgerOperation(
        key or body.idempotency_key,
        PaymentOperation.CAPTURE,
        body.order_id,
        lambda current: need(current).capture(body.amount_cents),
    )


def _capture_after(body: AuthoriseRequest) -> LedgerOperation:
    """The capture that `capture=True` asks for, under its own idempotency key."""
    request = PaymentRequest(order_id=body.order_id, idempotency_key=body.idempotency_key)
    return _capture(request, f"{body.idempotency_key}:capture")


def _authorise_ops(
    body: AuthoriseRequest, before: PaymentResult | None, decision: AuthorisationDecision | None
) -> list[LedgerOperation]:
    """The ledger operations an authorise asks for: the authorisation unless it is recorded
    already (`before`), then the capture if `capture` and the card approves."""
    ops: list[LedgerOperation] = []
    if before is not None:
        approved = before.approved
    else:
        assert decision is not None, "a new authorisation comes with the provider's decision"
        ops.append(_authorisation(body, decision))
        approved = decision.approved
    if body.capture and approved:
        ops.append(_capture_after(body))
    return ops


def _authorise_answer(
    before: PaymentResult | None, results: list[PaymentResult | PaymentError]
) -> PaymentResult | PaymentError:
    """The answer to an authorise (with capture): the capture's once approved, else the
    authorisation's (a decline, or the VOIDED tombstone of a void that came first)."""
    authorised = before if before is not None else results.pop(0)
    captured = results[0] if results else None
    if isinstance(authorised, PaymentError) or not authorised.approved or captured is None:
        return authorised
    return captured


async def authorise(
    ledger: Ledger, body: AuthoriseRequest, timing: ProviderTiming
) -> PaymentResult:
    """Hold the amount on the card (and take it, with `capture`); a decline is an answer.

    A repeated request is answered from the ledger without asking the provider again.
    """
    before = (await ledger.replay_many([body.idempotency_key])).get(body.idempotency_key)
    decision = None if before is not None else decide_authorisation(body.card_token)
    if decision is not None:
        if decision.slow:
            await asyncio.sleep(timing.slow_seconds)
        else:
            await timing.answer(1)
    ops = _authorise_ops(body, before, decision)
    answer = _authorise_answer(before, await apply_many(ledger, ops))
    if isinstance(answer, PaymentError):
        raise answer
    if decision is not None:
        log.info(
            "Authorise order %s %d cents: %s %s",
            body.order_id,
            body.amount_cents,
            answer.state,
            answer.decline_code or "",
        )
    return answer


async def authorise_many(
    ledger: Ledger,
    requests: Sequence[AuthoriseRequest],
    timing: ProviderTiming,
    start_late: StartLate,
) -> list[PaymentResult | PaymentError]:
    """`authorise` for many orders: the provider is asked for each of them at once (each
    answer takes its own latency; the batch is answered once the slowest has come), and the
    authorisations (with their captures) are recorded in one transaction.

    A card the provider answers too late for (`tok_timeout`) gets `ProviderTimeout` at once,
    and its authorisation lands later (through `start_late`), as it would with a real
    provider; the rest of the batch does not wait for it.
    """
    replayed = await ledger.replay_many([item.idempotency_key for item in requests])
    asked: list[tuple[PaymentResult | None, list[LedgerOperation]]] = []
    late: list[AuthoriseRequest] = []
    for item in requests:
        before = replayed.get(item.idempotency_key)
        decision = None if before is not None else decide_authorisation(item.card_token)
        if decision is not None and decision.slow:
            late.append(item)
            asked.append((None, []))
        else:
            asked.append((before, _authorise_ops(item, before, decision)))
    if late:
        start_late(_authorise_late(ledger, late, timing))
    await timing.answer(sum(1 for before, ops in asked if before is None and ops))
    applied = iter(await apply_many(ledger, [op for _, ops in asked for op in ops]))
    return [
        _authorise_answer(before, [next(applied) for _ in ops])
        if ops or before is not None
        else ProviderTimeout(item.order_id)
        for item, (before, ops) in zip(requests, asked, strict=True)
    ]


async def _authorise_late(
    ledger: Ledger, late: list[AuthoriseRequest], timing: ProviderTiming
) -> None:
    await asyncio.sleep(timing.slow_seconds)
    await apply_many(
        ledger, [_authorisation(item, decide_authorisation(item.card_token)) for item in late]
    )


async def capture_many(
    ledger: Ledger, requests: Sequence[PaymentRequest]
) -> list[PaymentResult | PaymentError]:
    """Take the authorised money of many orders in one transaction, one answer each."""
    return await apply_many(ledger, [_capture(item) for item in requests])


async def capture(ledger: Ledger, body: PaymentRequest) -> PaymentResult:
    """Take the authorised money (all of it unless `amount_cents` says less)."""
    return await apply(ledger, _capture(body))


async def void(ledger: Ledger, body: PaymentRequest) -> PaymentResult:
    """Cancel an authorisation; before any authorisation it leaves a tombstone that blocks a
    late one."""
    return await apply(
        ledger,
        LedgerOperation(
            body.idempotency_key,
            PaymentOperation.VOID,
            body.order_id,
            lambda current: (
                Payment.void_tombstone(body.order_id) if current is None else current.void()
            ),
        ),
    )


async def refund(ledger: Ledger, body: PaymentRequest) -> PaymentResult:
    """Give captured money back (all that is left unless `amount_cents` says less)."""
    need = _existing(body.order_id)
    return await apply(
        ledger,
        LedgerOperation(
            body.idempotency_key,
            PaymentOperation.REFUND,
            body.order_id,
            lambda current: need(current).refund(body.amount_cents),
        ),
    )


def void_key(order_id: UUID) -> str:
    """The idempotency key of a failed order's void: the order manager's saga voids with it."""
    return f"{order_id}:void"


def refund_key(order_id: UUID) -> str:
    """The idempotency key of a failed order's refund: the saga refunds with it."""
    return f"{order_id}:refund"


@dataclass(frozen=True)
class FailedOrder:
    """An order that ended FAILED, as its final event tells."""

    order_id: UUID
    # It reached payment (PROCESSING): an authorisation may have been asked for, and may land.
    asked_for_payment: bool


@dataclass(frozen=True)
class Compensation:
    """A void or refund made now for a failed order (not one recorded before)."""

    order_id: UUID
    operation: PaymentOperation
    result: PaymentResult


def _undo(order: FailedOrder, operation: PaymentOperation) -> LedgerOperation:
    """The void or the refund of `order`'s compensation: it applies only when
    `compensation_for` picks it, else it is `NothingToUndo` (which writes nothing)."""
    order_id = order.order_id

    def change(current: Payment | None) -> Payment:
        if compensation_for(current, may_land_late=order.asked_for_payment) is not operation:
            raise NothingToUndo(f"payment of order {order_id}: no {operation} to make")
        if current is None:
            return Payment.void_tombstone(order_id)
        return current.void() if operation is PaymentOperation.VOID else current.refund()

    key = void_key(order_id) if operation is PaymentOperation.VOID else refund_key(order_id)
    return LedgerOperation(key, operation, order_id, change)


async def compensate_failed(ledger: Ledger, orders: Sequence[FailedOrder]) -> list[Compensation]:
    """Leave no charge on failed orders: void an open authorisation, refund what is captured
    (and, for an order that asked for payment but has none yet, void ahead of a late
    authorisation), all in one transaction. The saga's own keys are used, so a compensation it
    made already is replayed, not repeated, and a racing one is one operation; a redelivered
    order changes nothing. Returns the compensations made now."""
    asked: dict[UUID, bool] = {}
    for order in orders:  # an order twice in a batch is compensated once
        asked[order.order_id] = asked.get(order.order_id, False) or order.asked_for_payment
    ops = [
        _undo(FailedOrder(order_id, asked_for_payment), operation)
        for order_id, asked_for_payment in asked.items()
        for operation in (PaymentOperation.VOID, PaymentOperation.REFUND)
    ]
    applied = await _apply_all(ledger, ops)
    return [
        Compensation(op.order_id, op.operation, answer)
        for op, (answer, fresh) in zip(ops, applied, strict=True)
        if fresh and isinstance(answer, PaymentResult)
    ]


async def payment_record(ledger: Ledger, order_id: UUID) -> tuple[Payment, list[dict[str, object]]]:
    """An order's payment and its ledger entries, oldest first."""
    payment = await ledger.get(order_id)
    if payment is None:
        raise PaymentNotFound(order_id)
    return payment, await ledger.entries(order_id)
