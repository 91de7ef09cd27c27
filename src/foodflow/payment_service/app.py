"""HTTP edge of the payment service: authorise, capture, void, refund, each idempotent by key."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Request, Response, status

from foodflow.contracts.batch import BatchRequest, BatchResponse
from foodflow.contracts.payment import (
    AuthoriseRequest,
    PaymentOperation,
    PaymentRequest,
    PaymentResult,
)
from foodflow.payment_service.domain import (
    AuthorisationDecision,
    Payment,
    PaymentConflict,
    PaymentError,
    PaymentNotFound,
    ProviderTimeout,
    decide_authorisation,
)
from foodflow.payment_service.ledger import LedgerOperation, PaymentChange, PostgresLedger
from foodflow.platform.config import Settings, get_settings
from foodflow.platform.db.pool import create_pool
from foodflow.platform.http.errors import batch_response, install_error_handlers
from foodflow.platform.http.probes import database_health_router
from foodflow.platform.metrics import install_metrics

log = logging.getLogger(__name__)

ERROR_STATUS: tuple[tuple[type[PaymentError], int], ...] = (
    (ProviderTimeout, status.HTTP_504_GATEWAY_TIMEOUT),
    (PaymentNotFound, status.HTTP_404_NOT_FOUND),
    (PaymentConflict, status.HTTP_409_CONFLICT),
    (PaymentError, status.HTTP_422_UNPROCESSABLE_CONTENT),
)


@dataclass(frozen=True)
class PaymentContext:
    ledger: PostgresLedger
    latency_seconds: float  # simulated provider latency of every authorisation
    slow_seconds: float  # how long `tok_timeout` makes the caller wait
    late: set[asyncio.Task[None]] = field(default_factory=set)  # authorisations landing late

    def start_late(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name="late authorisation")
        self.late.add(task)
        task.add_done_callback(self.late.discard)


async def get_context(request: Request) -> PaymentContext:  # async: no thread-pool hop
    context: PaymentContext = request.app.state.payment
    return context


Context = Annotated[PaymentContext, Depends(get_context)]
router = APIRouter()


def _existing(order_id: UUID) -> Any:
    def need(current: Payment | None) -> Payment:
        if current is None:
            raise PaymentNotFound(order_id)
        return current

    return need


@router.post("/authorise", response_model=PaymentResult)
async def authorise(body: AuthoriseRequest, context: Context) -> PaymentResult:
    """Hold `amount_cents` on the card (and take it, with `capture`); a decline is a 200
    answer with approved=false."""
    before = await context.ledger.replay(body.idempotency_key)
    decision = None if before is not None else decide_authorisation(body.card_token)
    if decision is not None:
        await asyncio.sleep(context.slow_seconds if decision.slow else context.latency_seconds)
    ops = _authorise_ops(body, before, decision)
    answer = _authorise_answer(before, await context.ledger.apply_many(ops))
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


@router.post("/authorise_batch", response_model=BatchResponse[PaymentResult])
async def authorise_batch(body: BatchRequest[AuthoriseRequest], context: Context) -> Response:
    """`/authorise` for many orders: the provider is asked for all of them at once, and each
    authorisation (with its capture) is recorded in one transaction.

    A card the provider answers too late for (`tok_timeout`) gets a 504 outcome at once, and
    its authorisation lands later, as it would with a real provider; the rest of the batch
    does not wait for it.
    """
    replayed = await context.ledger.replay_many([item.idempotency_key for item in body.items])
    asked: list[tuple[PaymentResult | None, list[LedgerOperation]]] = []
    late: list[AuthoriseRequest] = []
    for item in body.items:
        before = replayed.get(item.idempotency_key)
        decision = None if before is not None else decide_authorisation(item.card_token)
        if decision is not None and decision.slow:
            late.append(item)
            asked.append((None, []))
        else:
            asked.append((before, _authorise_ops(item, before, decision)))
    if late:
        context.start_late(_authorise_late(context, late))
    if any(before is None and ops for before, ops in asked):
        await asyncio.sleep(context.latency_seconds)
    applied = iter(await context.ledger.apply_many([op for _, ops in asked for op in ops]))
    answers: list[PaymentResult | Exception] = [
        _authorise_answer(before, [next(applied) for _ in ops])
        if ops or before is not None
        else ProviderTimeout(item.order_id)
        for item, (before, ops) in zip(body.items, asked, strict=True)
    ]
    log.info("Authorised a batch of %d payments", len(answers))
    return batch_response(PaymentResult, answers, ERROR_STATUS)


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


def _capture_after(body: AuthoriseRequest) -> LedgerOperation:
    """The capture that `capture=True` asks for, under its own idempotency key."""
    request = PaymentRequest(order_id=body.order_id, idempotency_key=body.idempotency_key)
    return LedgerOperation(
        f"{body.idempotency_key}:capture",
        PaymentOperation.CAPTURE,
        body.order_id,
        _capture(request),
    )


async def _authorise_late(context: PaymentContext, late: list[AuthoriseRequest]) -> None:
    await asyncio.sleep(context.slow_seconds)
    await context.ledger.apply_many(
        [_authorisation(item, decide_authorisation(item.card_token)) for item in late]
    )


def _authorisation(body: AuthoriseRequest, decision: AuthorisationDecision) -> LedgerOperation:
    def authorise_once(current: Payment | None) -> Payment:
        # A payment already there (another key, or a void that came first) is the answer.
        return current if current is not None else Payment.authorised(body, decision)

    return LedgerOperation(
        body.idempotency_key, PaymentOperation.AUTHORISE, body.order_id, authorise_once
    )


@router.post("/capture_batch", response_model=BatchResponse[PaymentResult])
async def capture_batch(body: BatchRequest[PaymentRequest], context: Context) -> Response:
    """`/capture` for many orders in one transaction: one outcome per order, in order."""
    answers = await context.ledger.apply_many(
        [
            LedgerOperation(
                item.idempotency_key, PaymentOperation.CAPTURE, item.order_id, _capture(item)
            )
            for item in body.items
        ]
    )
    log.info("Captured a batch of %d payments", len(answers))
    return batch_response(PaymentResult, list(answers), ERROR_STATUS)


def _capture(body: PaymentRequest) -> PaymentChange:
    need = _existing(body.order_id)
    return lambda current: need(current).capture(body.amount_cents)


@router.post("/capture", response_model=PaymentResult)
async def capture(body: PaymentRequest, context: Context) -> PaymentResult:
    """Take the authorised money (all of it unless `amount_cents` says less)."""
    return await context.ledger.apply(
        body.idempotency_key, PaymentOperation.CAPTURE, body.order_id, _capture(body)
    )


@router.post("/void", response_model=PaymentResult)
async def void(body: PaymentRequest, context: Context) -> PaymentResult:
    """Cancel an authorisation; before any authorisation it blocks a late one."""
    return await context.ledger.apply(
        body.idempotency_key,
        PaymentOperation.VOID,
        body.order_id,
        lambda current: (
            Payment.void_tombstone(body.order_id) if current is None else current.void()
        ),
    )


@router.post("/refund", response_model=PaymentResult)
async def refund(body: PaymentRequest, context: Context) -> PaymentResult:
    """Give captured money back (all that is left unless `amount_cents` says less)."""
    need = _existing(body.order_id)
    return await context.ledger.apply(
        body.idempotency_key,
        PaymentOperation.REFUND,
        body.order_id,
        lambda current: need(current).refund(body.amount_cents),
    )


@router.get("/payments/{order_id}")
async def payment_of(order_id: UUID, context: Context) -> dict[str, Any]:
    """An order's payment and its ledger entries, oldest first."""
    payment = await context.ledger.get(order_id)
    if payment is None:
        raise PaymentNotFound(order_id)
    return {
        "payment": payment.result(PaymentOperation.AUTHORISE).model_dump(mode="json"),
        "ledger": await context.ledger.entries(order_id),
    }


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the payment service; its lifespan owns the database pool."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings)
        try:
            app.state.pool = pool
            app.state.payment = PaymentContext(
                ledger=PostgresLedger(pool),
                latency_seconds=settings.payment_delay_seconds,
                slow_seconds=settings.payment_slow_seconds,
            )
            log.info("Payment service ready")
            yield
        finally:
            for task in app.state.payment.late:
                task.cancel()
            await pool.close()

    app = FastAPI(title="foodflow payment service", lifespan=lifespan)
    install_metrics(app, "payment_service")
    app.include_router(router)
    app.include_router(database_health_router(lambda request: request.app.state.pool))
    install_error_handlers(app, ERROR_STATUS)
    return app
