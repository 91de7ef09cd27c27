"""Thousands of hostile messages on `validated_orders`: the consumer survives, every bad one is
dead-lettered with a reason, and good orders sent among them are unaffected."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
import redis.asyncio as aioredis
from confluent_kafka import KafkaError, Message, Producer

from foodflow.contracts import topics
from foodflow.contracts.orders import DeadLetter, OrderItemIn, ValidatedOrder
from foodflow.order_manager.messages import Accepted, read_order
from foodflow.platform.config import Settings
from foodflow.tools import processes
from foodflow.tools.infra import process

from ..hostile import draw_hostile
from .conftest import Tail, sent_id, wait_final

pytestmark = pytest.mark.e2e
HOSTILE = 1500


def publish_all(settings: Settings, messages: list[bytes]) -> list[tuple[int, int]]:
    """Publish in order; returns each message's (partition, offset)."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 20})
    where: dict[int, tuple[int, int]] = {}

    def record(n: int) -> Callable[[KafkaError | None, Message], None]:
        def delivered(err: KafkaError | None, msg: Message) -> None:
            partition, offset = msg.partition(), msg.offset()
            if partition is not None and offset is not None:
                where[n] = (partition, offset)

        return delivered

    for n, value in enumerate(messages):
        producer.produce(topics.VALIDATED_ORDERS, value=value, on_delivery=record(n))
        producer.poll(0)
    assert producer.flush(60) == 0
    return [where[n] for n in range(len(messages))]


async def test_hostile_messages_are_dead_lettered_and_good_orders_flow(
    system: Settings, redis_client: aioredis.Redis, tail: Tail
) -> None:
    manager = processes.ServiceProcess("order_manager", system)
    pid_before = process.read_pid(manager.pidfile)
    dead = tail(topics.DEAD_LETTER)

    hostile = draw_hostile(HOSTILE)
    good = [
        ValidatedOrder(
            order_id=uuid.uuid4(),
            user_id="fuzz-good",
            items=[OrderItemIn(item_id="pho-bo", quantity=1)],
        )
        for _ in range(5)
    ]
    # Good orders spread among the hostile ones.
    messages = list(hostile)
    for n, order in enumerate(good):
        messages.insert((n + 1) * len(hostile) // 6, order.model_dump_json().encode())
    positions = await asyncio.to_thread(publish_all, system, messages)

    for order in good:
        assert (await wait_final(redis_client, sent_id(order), timeout=60)).status == "CONFIRMED"

    expected_dead = {
        pos
        for pos, raw in zip(positions, messages, strict=True)
        if not isinstance(read_order(raw, topics.VALIDATED_ORDERS, *pos), Accepted)
    }
    assert len(expected_dead) > HOSTILE * 0.9  # nearly all of them are bad, by construction
    seen: set[tuple[int, int]] = set()
    deadline = time.monotonic() + 90
    while not expected_dead <= seen and time.monotonic() < deadline:
        await asyncio.to_thread(dead._drain, 0.5)
        for values in dead.by_key.values():
            for value in values:
                letter = DeadLetter.model_validate_json(value)
                if letter.source_topic == topics.VALIDATED_ORDERS:
                    assert letter.error
                    seen.add((letter.source_partition, letter.source_offset))
        dead.by_key.clear()
    missing = expected_dead - seen
    assert not missing, f"{len(missing)} bad messages never reached the dead-letter topic"

    # Zero crashes: the same process, still ready.
    assert process.read_pid(manager.pidfile) == pid_before
    async with httpx.AsyncClient() as client:
        assert (await client.get(manager.url + "/ready")).status_code == 200
