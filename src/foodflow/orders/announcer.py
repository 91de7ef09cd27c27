"""Announces an order's transitions on Kafka, the one way every owner of an order publishes them."""

from __future__ import annotations

from prometheus_client import Counter
from pydantic import BaseModel

from foodflow.contracts import topics
from foodflow.contracts.orders import OrderFinalEvent, OrderStatusUpdate
from foodflow.platform.kafka.producer import EventProducer

ORDERS_FINISHED = Counter(
    "foodflow_orders_finished_total", "Orders that reached a final state", ["status", "reason"]
)


class KafkaAnnouncer:
    """Announces transitions: all on `order_status_updates`, the persisted ones (every status
    from CONFIRMED on, `OrderStatus.persisted`) on `db_write_order_status` as well."""

    def __init__(self, producer: EventProducer) -> None:
        self.producer = producer

    async def __call__(self, update: OrderStatusUpdate, final: OrderFinalEvent | None) -> None:
        key = str(update.order_id)
        messages: list[tuple[str, BaseModel]] = [(topics.ORDER_STATUS_UPDATES, update)]
        if final is not None:
            messages.append((topics.DB_WRITE_ORDER_STATUS, final))
            if final.status.ends_saga or final.status.is_terminal:
                # Where the saga or the order ends; a delivery step in between finishes nothing.
                ORDERS_FINISHED.labels(final.status.value, final.reason or "").inc()
        await self.producer.publish_all(messages, key=key)
