"""HTTP edge and composition root of the payment service: authorise, capture, void, refund,
each idempotent by key, and the consumer that compensates failed orders from their final
events (`final_orders`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Response, status

from foodflow.contracts import topics
from foodflow.contracts.batch import BatchRequest, BatchResponse
from foodflow.contracts.payment import (
    AuthoriseRequest,
    PaymentOperation,
    PaymentRequest,
    PaymentResult,
)
from foodflow.payment_service import services
from foodflow.payment_service.domain import (
    PaymentConflict,
    PaymentError,
    PaymentNotFound,
    ProviderTimeout,
)
from foodflow.payment_service.final_orders import CompensateFailedOrders
from foodflow.payment_service.repository import PostgresLedger
from foodflow.payment_service.services import ProviderTiming
from foodflow.platform.config import Settings, get_settings
from foodflow.platform.db.migrations import migrate_pool
from foodflow.platform.db.pool import create_pool
from foodflow.platform.http.app import service_app
from foodflow.platform.http.errors import batch_response, install_error_handlers
from foodflow.platform.http.probes import install_probes, postgres_check, running_check
from foodflow.platform.http.runtime import RuntimeSlot
from foodflow.platform.http.service_auth import allow, install_service_auth
from foodflow.platform.kafka.consumer import BatchConsumer
from foodflow.platform.kafka.dlq import DeadLetterPublisher
from foodflow.platform.kafka.producer import EventProducer
from foodflow.platform.logs import batch_of
from foodflow.platform.secrets import require

log = logging.getLogger(__name__)
SERVICE = "payment_service"
CONSUMER_GROUP = "payment_service"
CONSUMER_STOP_SECONDS = 30

ERROR_STATUS: tuple[tuple[type[PaymentError], int], ...] = (
    (ProviderTimeout, status.HTTP_504_GATEWAY_TIMEOUT),
    (PaymentNotFound, status.HTTP_404_NOT_FOUND),
    (PaymentConflict, status.HTTP_409_CONFLICT),
    (PaymentError, status.HTTP_422_UNPROCESSABLE_CONTENT),
)


@dataclass(frozen=True)
class PaymentRuntime:
    """What the routes and probes need, built once by the lifespan."""

    pool: asyncpg.Pool
    ledger: PostgresLedger
    timing: ProviderTiming
    consumer: BatchConsumer  # of final order events: failed orders are compensated
    consuming: asyncio.Task[None]
    late: set[asyncio.Task[None]] = field(default_factory=set)  # authorisations landing late

    def start_late(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name="late authorisation")
        self.late.add(task)
        task.add_done_callback(self.late.discard)


RUNTIME = RuntimeSlot(PaymentRuntime)
runtime_of = RUNTIME.of


Runtime = Annotated[PaymentRuntime, Depends(RUNTIME.dependency)]
router = APIRouter()
# Who may call what: the saga charges; voids and refunds only compensate, the saga's (a
# payment captured for an order that then fails) or a cancelled delivery's.
SAGA = [Depends(allow("order_manager"))]
COMPENSATION = [Depends(allow("order_manager", "delivery_service"))]
RECORD_READERS = [Depends(allow("delivery_service", "gateway"))]


@router.post("/authorise", response_model=PaymentResult, dependencies=SAGA)
async def authorise(body: AuthoriseRequest, runtime: Runtime) -> PaymentResult:
    """Hold `amount_cents` on the card (and take it, with `capture`); a decline is a 200
    answer with approved=false."""
    return await services.authorise(runtime.ledger, body, runtime.timing)


@router.post("/authorise_batch", response_model=BatchResponse[PaymentResult], dependencies=SAGA)
async def authorise_batch(body: BatchRequest[AuthoriseRequest], runtime: Runtime) -> Response:
    """`/authorise` for many orders: the provider is asked for all of them at once, and each
    authorisation (with its capture) is recorded in one transaction.

    A card the provider answers too late for (`tok_timeout`) gets a 504 outcome at once, and
    its authorisation lands later, as it would with a real provider; the rest of the batch
    does not wait for it.
    """
    answers = await services.authorise_many(
        runtime.ledger, body.items, runtime.timing, runtime.start_late
    )
    log.info(
        "Authorised a batch of %d payments",
        len(answers),
        extra=batch_of(item.order_id for item in body.items),
    )
    return batch_response(PaymentResult, list(answers), ERROR_STATUS)


@router.post("/capture_batch", response_model=BatchResponse[PaymentResult], dependencies=SAGA)
async def capture_batch(body: BatchRequest[PaymentRequest], runtime: Runtime) -> Response:
    """`/capture` for many orders in one transaction: one outcome per order, in order."""
    answers = await services.capture_many(runtime.ledger, body.items)
    log.info(
        "Captured a batch of %d payments",
        len(answers),
        extra=batch_of(item.order_id for item in body.items),
    )
    return batch_response(PaymentResult, list(answers), ERROR_STATUS)


@router.post("/capture", response_model=PaymentResult, dependencies=SAGA)
async def capture(body: PaymentRequest, runtime: Runtime) -> PaymentResult:
    """Take the authorised money (all of it unless `amount_cents` says less)."""
    result = await services.capture(runtime.ledger, body)
    log.info("Capture of order %s: %s", body.order_id, result.state)
    return result


@router.post("/void", response_model=PaymentResult, dependencies=COMPENSATION)
async def void(body: PaymentRequest, runtime: Runtime) -> PaymentResult:
    """Cancel an authorisation; before any authorisation it blocks a late one."""
    result = await services.void(runtime.ledger, body)
    log.info("Void of order %s: %s", body.order_id, result.state)
    return result


@router.post("/refund", response_model=PaymentResult, dependencies=COMPENSATION)
async def refund(body: PaymentRequest, runtime: Runtime) -> PaymentResult:
    """Give captured money back (all that is left unless `amount_cents` says less)."""
    result = await services.refund(runtime.ledger, body)
    log.info("Refund of order %s: %s", body.order_id, result.state)
    return result


@router.get("/payments/{order_id}", dependencies=RECORD_READERS)
async def payment_of(order_id: UUID, runtime: Runtime) -> dict[str, Any]:
    """An order's payment and its ledger entries, oldest first."""
    payment, entries = await services.payment_record(runtime.ledger, order_id)
    return {
        "payment": payment.result(PaymentOperation.AUTHORISE).model_dump(mode="json"),
        "ledger": entries,
    }


async def _stop_consumer(consumer: BatchConsumer, running: asyncio.Task[None]) -> None:
    await consumer.stop()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(running, timeout=CONSUMER_STOP_SECONDS)


def create_app(
    settings: Settings | None = None,
    *,
    final_topic: str = topics.DB_WRITE_ORDER_STATUS,
    group_id: str = CONSUMER_GROUP,
    dead_letter_topic: str = topics.DEAD_LETTER,
) -> FastAPI:
    """Build the payment service; its lifespan migrates its tables, owns the database pool and
    consumes `final_topic` as `group_id` (failed orders left with a charge are compensated)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        require(settings, "service_public_keys")
        async with contextlib.AsyncExitStack() as stack:
            pool = await create_pool(settings)
            stack.push_async_callback(pool.close)
            await migrate_pool(pool, SERVICE, Path(__file__).parent / "migrations")
            ledger = PostgresLedger(pool)
            producer = EventProducer(settings, client_id=f"{group_id}-dlq")
            await producer.start()
            stack.push_async_callback(producer.stop)
            dead_letters = DeadLetterPublisher(producer, dead_letter_topic)
            consumer = BatchConsumer(
                settings,
                [final_topic],
                group_id,
                CompensateFailedOrders(ledger, dead_letters),
                dead_letter=dead_letters,
            )
            await consumer.start()
            consuming = asyncio.create_task(consumer.run(), name="final order consumer")
            stack.push_async_callback(_stop_consumer, consumer, consuming)
            runtime = PaymentRuntime(
                pool=pool,
                ledger=ledger,
                timing=ProviderTiming(
                    latency_seconds=settings.payment_delay_seconds,
                    slow_seconds=settings.payment_slow_seconds,
                    tail=settings.payment_delay_tail,
                ),
                consumer=consumer,
                consuming=consuming,
            )
            app.state.runtime = runtime
            log.info("Payment service ready; consuming %s as %s", final_topic, group_id)
            try:
                yield
            finally:
                for task in list(runtime.late):
                    task.cancel()

    app = service_app("foodflow payment service", settings, lifespan=lifespan)
    install_probes(
        app,
        SERVICE,
        checks={
            "postgres": postgres_check(lambda request: runtime_of(request).pool),
            "consumer": running_check(lambda request: not runtime_of(request).consuming.done()),
        },
    )
    install_service_auth(app, SERVICE, settings)
    app.include_router(router)
    install_error_handlers(app, ERROR_STATUS)
    return app
