"""The payment service over HTTP (in-process ASGI) against the real PostgreSQL, and its
consumer of final order events against the real Kafka (topics and group of its own)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
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
    StatusChange,
)
from foodflow.contracts.pricing import PriceBreakdown
from foodflow.payment_service.app import PaymentRuntime, create_app
from foodflow.platform.config import Settings
from foodflow.platform.kafka.admin import delete_topics, ensure_topics, wait_for_kafka
from foodflow.platform.kafka.consumer import BatchConsumer
from foodflow.platform.kafka.producer import EventProducer

from ..batch_http import post_batch
from ..service_auth import as_caller

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class FinalTopics:
    """The topic of final order events this module's payment service consumes, and its
    dead-letter topic: fresh ones, so the shared `db_write_order_status` is not touched."""

    events: str
    dead_letters: str


@pytest.fixture(scope="module")
async def final_topics(settings: Settings) -> AsyncIterator[FinalTopics]:
    await asyncio.to_thread(wait_for_kafka, settings.kafka_bootstrap, 60.0)
    names = FinalTopics(f"test-final-{uuid4().hex[:8]}", f"test-dlq-{uuid4().hex[:8]}")
    await asyncio.to_thread(
        ensure_topics, settings.kafka_bootstrap, 3, [names.events, names.dead_letters]
    )
    yield names
    with contextlib.suppress(Exception):
        await asyncio.to_thread(
            delete_topics, settings.kafka_bootstrap, [names.events, names.dead_letters]
        )


@pytest.fixture(scope="module")
async def payment_app(settings: Settings, final_topics: FinalTopics) -> AsyncIterator[FastAPI]:
    fast = settings.model_copy(update={"payment_delay_seconds": 0.0, "payment_slow_seconds": 0.3})
    app = create_app(
        fast,
        final_topic=final_topics.events,
        group_id=f"payment_service-test-{uuid4().hex[:8]}",
        dead_letter_topic=final_topics.dead_letters,
    )
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="module")
async def payments(settings: Settings, payment_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=payment_app)
    # As the order manager, who charges (and voids or refunds what it cannot complete).
    saga = as_caller(settings, "order_manager", "payment_service")
    async with httpx.AsyncClient(
        transport=transport, base_url="http://pay", headers=saga
    ) as client:
        yield client


@pytest.fixture(scope="module")
def delivery(settings: Settings) -> dict[str, str]:
    """The delivery service's header: the reader of payment records."""
    return as_caller(settings, "delivery_service", "payment_service")


@pytest.fixture
async def pg(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(settings.postgres_dsn)
    yield conn
    await conn.close()


def authorise_body(
    order_id: UUID, token: str | None = "tok_visa", cents: int = 4509
) -> dict[str, Any]:
    return {
        "order_id": str(order_id),
        "amount_cents": cents,
        "card_token": token,
        "idempotency_key": f"{order_id}:authorise",
    }


def op(order_id: UUID, name: str, **extra: Any) -> dict[str, Any]:
    return {"order_id": str(order_id), "idempotency_key": f"{order_id}:{name}", **extra}


async def test_authorise_capture_refund_with_ledger(
    payments: httpx.AsyncClient, pg: asyncpg.Connection, delivery: dict[str, str]
) -> None:
    order_id = uuid4()
    auth = (await payments.post("/authorise", json=authorise_body(order_id))).json()
    assert (auth["approved"], auth["state"], auth["amount_cents"]) == (True, "AUTHORISED", 4509)
    capture = (await payments.post("/capture", json=op(order_id, "capture"))).json()
    assert (capture["state"], capture["captured_cents"]) == ("CAPTURED", 4509)
    refund = (await payments.post("/refund", json=op(order_id, "refund"))).json()
    assert (refund["state"], refund["refunded_cents"]) == ("REFUNDED", 4509)
    rows = await pg.fetch(
        "SELECT operation, amount_cents FROM payment_ledger WHERE order_id=$1 ORDER BY created_at",
        order_id,
    )
    assert [tuple(r) for r in rows] == [("AUTHORISE", 4509), ("CAPTURE", 4509), ("REFUND", 4509)]
    record = await payments.get(f"/payments/{order_id}", headers=delivery)
    assert record.json()["payment"]["state"] == "REFUNDED"


async def test_the_same_key_concurrently_is_one_operation(
    payments: httpx.AsyncClient, pg: asyncpg.Connection
) -> None:
    order_id = uuid4()
    await payments.post("/authorise", json=authorise_body(order_id))
    await payments.post("/capture", json=op(order_id, "capture"))
    answers = await asyncio.gather(
        *(payments.post("/refund", json=op(order_id, "refund", amount_cents=500)) for _ in range(8))
    )
    assert {a.json()["refunded_cents"] for a in answers} == {500}
    count = await pg.fetchval(
        "SELECT count(*) FROM payment_ledger WHERE order_id=$1 AND operation='REFUND'", order_id
    )
    assert count == 1


@pytest.mark.parametrize(
    ("token", "code"),
    [("tok_declined", "CARD_DECLINED"), ("tok_insufficient_funds", "INSUFFICIENT_FUNDS")],
)
async def test_declines_are_answers_and_cannot_be_captured(
    payments: httpx.AsyncClient, token: str, code: str
) -> None:
    order_id = uuid4()
    answer = await payments.post("/authorise", json=authorise_body(order_id, token))
    assert answer.status_code == 200
    assert (answer.json()["approved"], answer.json()["decline_code"]) == (False, code)
    refused = await payments.post("/capture", json=op(order_id, "capture"))
    assert refused.status_code == 409 and "DECLINED" in refused.json()["detail"]


async def test_void_before_a_slow_authorisation_wins(payments: httpx.AsyncClient) -> None:
    order_id = uuid4()
    slow = asyncio.create_task(
        payments.post("/authorise", json=authorise_body(order_id, "tok_timeout"))
    )
    await asyncio.sleep(0.05)
    voided = (await payments.post("/void", json=op(order_id, "void"))).json()
    assert voided["state"] == "VOIDED"
    late = (await slow).json()
    assert (late["approved"], late["decline_code"]) == (False, "VOIDED")


async def test_clear_errors(payments: httpx.AsyncClient) -> None:
    missing = await payments.post("/capture", json=op(uuid4(), "capture"))
    assert missing.status_code == 404 and "no payment" in missing.json()["detail"]
    negative = await payments.post("/authorise", json=authorise_body(uuid4(), cents=-1))
    assert negative.status_code == 422
    order_id = uuid4()
    await payments.post("/authorise", json=authorise_body(order_id))
    reused = await payments.post(
        "/void", json={"order_id": str(order_id), "idempotency_key": f"{order_id}:authorise"}
    )
    assert reused.status_code == 409 and "idempotency key" in reused.json()["detail"]


async def test_authorise_and_capture_batches_answer_each_payment(
    payments: httpx.AsyncClient, pg: asyncpg.Connection
) -> None:
    ok, declined, missing = uuid4(), uuid4(), uuid4()
    auths = await post_batch(
        payments,
        "/authorise_batch",
        [authorise_body(ok), authorise_body(declined, "tok_declined"), authorise_body(ok)],
    )
    assert [a["result"]["state"] for a in auths] == ["AUTHORISED", "DECLINED", "AUTHORISED"]
    assert auths[0]["result"] == auths[2]["result"]  # the same key twice: one operation

    captures = await post_batch(
        payments,
        "/capture_batch",
        [op(ok, "capture"), op(declined, "capture"), op(missing, "capture")],
    )

    assert captures[0]["status"] == 200 and captures[0]["result"]["captured_cents"] == 4509
    assert captures[1]["status"] == 409 and "DECLINED" in captures[1]["detail"]
    assert captures[2]["status"] == 404
    rows = await pg.fetch(
        "SELECT operation FROM payment_ledger WHERE order_id=$1 ORDER BY created_at", ok
    )
    assert [r["operation"] for r in rows] == ["AUTHORISE", "CAPTURE"]
    again = await post_batch(payments, "/capture_batch", [op(ok, "capture")])
    assert again[0]["result"] == captures[0]["result"]  # replayed from the ledger


async def test_a_slow_card_does_not_hold_its_batch_back(
    payments: httpx.AsyncClient, delivery: dict[str, str]
) -> None:
    slow, fast = uuid4(), uuid4()
    outcomes = await post_batch(
        payments,
        "/authorise_batch",
        [authorise_body(slow, "tok_timeout"), authorise_body(fast)],
    )
    assert outcomes[0]["status"] == 504 and outcomes[0]["error"] == "ProviderTimeout"
    assert outcomes[1]["result"]["state"] == "AUTHORISED"
    # The slow authorisation lands later (payment_slow_seconds = 0.3 here), as with a provider.
    for _ in range(50):
        landed = await payments.get(f"/payments/{slow}", headers=delivery)
        if landed.status_code == 200:
            break
        await asyncio.sleep(0.05)
    assert landed.json()["payment"]["state"] == "AUTHORISED"


async def test_authorise_with_capture_takes_the_money_in_one_call(
    payments: httpx.AsyncClient, pg: asyncpg.Connection
) -> None:
    single, batched, declined = uuid4(), uuid4(), uuid4()
    one = await payments.post("/authorise", json={**authorise_body(single), "capture": True})
    assert (one.json()["state"], one.json()["captured_cents"]) == ("CAPTURED", 4509)
    outcomes = await post_batch(
        payments,
        "/authorise_batch",
        [
            {**authorise_body(batched), "capture": True},
            {**authorise_body(declined, "tok_declined"), "capture": True},
        ],
    )
    assert outcomes[0]["result"]["state"] == "CAPTURED"
    assert outcomes[1]["result"]["state"] == "DECLINED"
    for order_id in (single, batched):
        rows = await pg.fetch(
            "SELECT idempotency_key, operation, amount_cents FROM payment_ledger"
            " WHERE order_id=$1 ORDER BY created_at",
            order_id,
        )
        assert [tuple(r) for r in rows] == [
            (f"{order_id}:authorise", "AUTHORISE", 4509),
            (f"{order_id}:authorise:capture", "CAPTURE", 4509),
        ]
    # A retry of the same call is answered from the ledger: captured once.
    again = await post_batch(
        payments, "/authorise_batch", [{**authorise_body(batched), "capture": True}]
    )
    assert again[0]["result"] == outcomes[0]["result"]
    assert await pg.fetchval("SELECT count(*) FROM payment_ledger WHERE order_id=$1", batched) == 2


# --- compensating failed orders from their final events -----------------------------------------

T0 = datetime(2025, 3, 1, 18, 30, tzinfo=UTC)


def final_event(order_id: UUID, status: OrderStatus) -> OrderFinalEvent:
    steps = [OrderStatus.RECEIVED, OrderStatus.PROCESSING, status]
    total = Decimal("45.09")
    return OrderFinalEvent(
        order_id=order_id,
        user_id="user-001",
        status=status,
        version=3,
        reason=FailureReason.PAYMENT_UNAVAILABLE if status is OrderStatus.FAILED else None,
        price=PriceBreakdown(
            subtotal=total,
            discount=Decimal("0"),
            delivery_fee=Decimal("0"),
            small_order_fee=Decimal("0"),
            tax=Decimal("0"),
            total=total,
        ),
        created_at=T0,
        history=[StatusChange(status=s, version=v, at=T0) for v, s in enumerate(steps, 1)],
    )


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[EventProducer]:
    async with EventProducer(settings) as producer:
        yield producer


async def handled(app: FastAPI, count: int, within: float = 45.0) -> None:
    """Wait until the payment service's consumer has handled `count` messages in all."""
    runtime: PaymentRuntime = app.state.runtime
    async with asyncio.timeout(within):
        while runtime.consumer.messages_handled < count:
            assert not runtime.consuming.done(), "the consumer loop died"
            await asyncio.sleep(0.05)


async def charge(payments: httpx.AsyncClient, order_id: UUID) -> None:
    """As the saga charges: authorise with capture, key `<order_id>:authorise`."""
    [outcome] = await post_batch(
        payments, "/authorise_batch", [{**authorise_body(order_id), "capture": True}]
    )
    assert outcome["result"]["state"] == "CAPTURED"


async def ledger_of(pg: asyncpg.Connection, order_id: UUID) -> list[tuple[str, str, int]]:
    rows = await pg.fetch(
        "SELECT idempotency_key, operation, amount_cents FROM payment_ledger"
        " WHERE order_id=$1 ORDER BY created_at, idempotency_key",
        order_id,
    )
    return [tuple(r) for r in rows]


async def test_a_failed_order_left_charged_is_refunded_once_from_its_final_event(
    payment_app: FastAPI,
    payments: httpx.AsyncClient,
    final_topics: FinalTopics,
    producer: EventProducer,
    pg: asyncpg.Connection,
) -> None:
    """The saga charged, then gave up compensating (the payment service was out past the
    grace) and the order ended FAILED: the payment service refunds it from the event, once,
    however often the event comes; a CONFIRMED order's capture stays."""
    runtime: PaymentRuntime = payment_app.state.runtime
    failed, confirmed = uuid4(), uuid4()
    await charge(payments, failed)
    await charge(payments, confirmed)
    start = runtime.consumer.messages_handled

    event = final_event(failed, OrderStatus.FAILED)
    await producer.publish(final_topics.events, event, key=str(failed))
    await producer.publish(
        final_topics.events, final_event(confirmed, OrderStatus.CONFIRMED), key=str(confirmed)
    )
    await handled(payment_app, start + 2)
    await producer.publish(final_topics.events, event, key=str(failed))  # delivered again
    await handled(payment_app, start + 3)

    assert await ledger_of(pg, failed) == [
        (f"{failed}:authorise", "AUTHORISE", 4509),
        (f"{failed}:authorise:capture", "CAPTURE", 4509),
        (f"{failed}:refund", "REFUND", 4509),
    ]
    state = await pg.fetchrow(
        "SELECT state, captured_cents, refunded_cents FROM payments WHERE order_id=$1", failed
    )
    assert tuple(state) == ("REFUNDED", 4509, 4509)
    assert [op for _, op, _ in await ledger_of(pg, confirmed)] == ["AUTHORISE", "CAPTURE"]


async def test_the_saga_refund_is_not_repeated(
    payment_app: FastAPI,
    payments: httpx.AsyncClient,
    final_topics: FinalTopics,
    producer: EventProducer,
    pg: asyncpg.Connection,
) -> None:
    runtime: PaymentRuntime = payment_app.state.runtime
    order_id = uuid4()
    await charge(payments, order_id)
    refunded = await payments.post("/refund", json=op(order_id, "refund"))  # the saga's
    assert refunded.json()["state"] == "REFUNDED"
    start = runtime.consumer.messages_handled

    await producer.publish(
        final_topics.events, final_event(order_id, OrderStatus.FAILED), key=str(order_id)
    )
    await handled(payment_app, start + 1)

    assert [op for _, op, _ in await ledger_of(pg, order_id)] == ["AUTHORISE", "CAPTURE", "REFUND"]


async def test_what_is_not_a_final_event_is_dead_lettered(
    payment_app: FastAPI, settings: Settings, final_topics: FinalTopics, producer: EventProducer
) -> None:
    runtime: PaymentRuntime = payment_app.state.runtime
    start = runtime.consumer.messages_handled
    order_id = uuid4()

    await producer.publish(final_topics.events, b"not a final event", key=str(order_id))
    await handled(payment_app, start + 1)

    seen: list[Message] = []

    async def collect(batch: list[Message]) -> None:
        seen.extend(batch)

    reader = BatchConsumer(
        settings, [final_topics.dead_letters], f"g-{uuid4().hex[:8]}", collect, poll_timeout=0.2
    )
    task = asyncio.create_task(reader.run())
    try:
        async with asyncio.timeout(45):
            while not any(
                DeadLetter.model_validate_json(m.value() or b"").order_id == order_id for m in seen
            ):
                assert not task.done()
                await asyncio.sleep(0.05)
    finally:
        await reader.stop()
        await task
    letter = next(
        letter
        for letter in (DeadLetter.model_validate_json(m.value() or b"") for m in seen)
        if letter.order_id == order_id
    )
    assert letter.source_topic == final_topics.events
    assert letter.payload == "not a final event"
    assert "invalid OrderFinalEvent" in letter.error
    assert runtime.consumer.running
