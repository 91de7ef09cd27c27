"""The payment service's consumer of final order events: orders that ended FAILED are left
with no charge, whatever became of the saga's own compensation.

The saga voids or refunds a failed order's payment itself; when the payment service stays
unreachable past the dependency grace, that compensation is logged and dropped while the order
still ends FAILED. Here the payment service catches up from `db_write_order_status`, with the
saga's idempotency keys (`compensate_failed`): what the saga did already is not repeated.
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

from confluent_kafka import Message
from prometheus_client import Counter
from pydantic import ValidationError

from foodflow.contracts.orders import OrderFinalEvent, OrderStatus
from foodflow.contracts.payment import PaymentOperation
from foodflow.payment_service import services
from foodflow.payment_service.services import FailedOrder, Ledger
from foodflow.platform.kafka.dlq import DeadLetterPublisher

log = logging.getLogger(__name__)

COMPENSATIONS = Counter(
    "foodflow_payment_compensations_total",
    "Voids and refunds the payment service made itself for orders that ended FAILED",
    ["action"],
)


def failed_order(event: OrderFinalEvent) -> FailedOrder | None:
    """The failed order an event names, or None when it did not end FAILED (CONFIRMED and
    DELIVERED keep their charge; CANCELLED is refunded by the delivery service)."""
    if event.status is not OrderStatus.FAILED:
        return None
    asked = event.price is not None or any(
        change.status is OrderStatus.PROCESSING for change in event.history
    )
    return FailedOrder(event.order_id, asked_for_payment=asked)


def _unreadable(msg: Message, exc: ValidationError) -> tuple[str, UUID | None]:
    errors = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<body>'}: {err['msg']}"
        for err in exc.errors(include_url=False)[:10]
    )
    try:
        order_id = UUID((msg.key() or b"").decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        order_id = None
    return f"invalid OrderFinalEvent: {errors}", order_id


class CompensateFailedOrders:
    """`handle_batch` over `db_write_order_status`: each batch's failed orders are compensated
    in one ledger transaction; messages that are not final events are dead-lettered after it.
    Idempotent: a redelivered batch finds its compensations recorded and changes nothing."""

    def __init__(self, ledger: Ledger, dead_letters: DeadLetterPublisher) -> None:
        self._ledger = ledger
        self._dead_letters = dead_letters

    async def __call__(self, messages: list[Message]) -> None:
        failed: list[FailedOrder] = []
        unreadable: list[tuple[Message, str, UUID | None]] = []
        for msg in messages:
            try:
                event = OrderFinalEvent.model_validate_json(msg.value() or b"")
            except ValidationError as exc:
                unreadable.append((msg, *_unreadable(msg, exc)))
                continue
            order = failed_order(event)
            if order is not None:
                failed.append(order)
        for done in await services.compensate_failed(self._ledger, failed):
            action = "void" if done.operation is PaymentOperation.VOID else "refund"
            COMPENSATIONS.labels(action).inc()
            log.warning(
                "Compensated failed order %s: %s (%d cents captured, %d refunded, state %s)",
                done.order_id,
                action,
                done.result.captured_cents,
                done.result.refunded_cents,
                done.result.state,
            )
        await asyncio.gather(
            *(self._dead_letters.publish(msg, why, order_id) for msg, why, order_id in unreadable)
        )
