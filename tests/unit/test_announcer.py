"""Which topics a transition goes to, and what counts as a finished order (no Kafka)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY
from pydantic import BaseModel

from foodflow.contracts import topics
from foodflow.contracts.orders import OrderFinalEvent, OrderStatus
from foodflow.orders.announcer import KafkaAnnouncer


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def publish_all(self, messages: list[tuple[str, BaseModel]], *, key: str) -> None:
        self.sent += [(topic, str(m.model_dump()["status"])) for topic, m in messages]


def finished(status: str) -> float:
    labels = {"status": status, "reason": ""}
    return REGISTRY.get_sample_value("foodflow_orders_finished_total", labels) or 0.0


async def test_every_persisted_step_goes_to_the_writer_but_only_ends_count_as_finished() -> None:
    producer = FakeProducer()
    announce = KafkaAnnouncer(producer)  # type: ignore[arg-type]
    now = datetime.now(UTC)
    before = {s: finished(s) for s in ("COURIER_ASSIGNED", "PICKED_UP", "DELIVERED")}
    for version, status in enumerate(
        (OrderStatus.COURIER_ASSIGNED, OrderStatus.PICKED_UP, OrderStatus.DELIVERED), start=4
    ):
        fields: dict[str, Any] = {
            "order_id": uuid.uuid4(),
            "user_id": "u-1",
            "status": status,
            "version": version,
            "created_at": now,
        }
        event = OrderFinalEvent(**fields)
        await announce(event.status_update(), event if status.persisted else None)

    written = [status for topic, status in producer.sent if topic == topics.DB_WRITE_ORDER_STATUS]
    assert written == ["COURIER_ASSIGNED", "PICKED_UP", "DELIVERED"]
    assert finished("COURIER_ASSIGNED") == before["COURIER_ASSIGNED"]
    assert finished("PICKED_UP") == before["PICKED_UP"]
    assert finished("DELIVERED") == before["DELIVERED"] + 1
