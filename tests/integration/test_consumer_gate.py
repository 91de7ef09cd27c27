"""BatchConsumer's gate against the real broker: nothing is read while it holds, the member
stays in its group however long it holds, and everything held back is read after."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from uuid import uuid4

import pytest
from confluent_kafka import ConsumerGroupState, Message
from confluent_kafka.admin import AdminClient
from pydantic import BaseModel

from foodflow.platform.config import Settings
from foodflow.platform.kafka.admin import delete_topics, ensure_topics, wait_for_kafka
from foodflow.platform.kafka.consumer import BatchConsumer
from foodflow.platform.kafka.producer import EventProducer

pytestmark = pytest.mark.integration

# The broker's smallest session timeout (group.min.session.timeout.ms); the poll interval may
# not be shorter. Holding longer than this without polling would cost the member its group.
MAX_POLL_INTERVAL_MS = 6000


class Ping(BaseModel):
    n: int


@pytest.fixture
async def topic(settings: Settings) -> AsyncIterator[str]:
    await asyncio.to_thread(wait_for_kafka, settings.kafka_bootstrap, 60.0)
    name = f"test-{uuid4().hex[:8]}"
    await asyncio.to_thread(ensure_topics, settings.kafka_bootstrap, 2, [name])
    yield name
    with contextlib.suppress(Exception):  # leftovers are harmless: the names are random
        await asyncio.to_thread(delete_topics, settings.kafka_bootstrap, [name])


async def until(condition: Callable[[], bool], within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.05)


def group_is_stable_with_one_member(bootstrap: str, group: str) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return description.state is ConsumerGroupState.STABLE and len(description.members) == 1


async def test_a_holding_gate_pauses_reading_but_keeps_the_membership(
    settings: Settings, topic: str
) -> None:
    group = f"g-{uuid4().hex[:8]}"
    handled: list[int] = []
    passable = asyncio.Event()
    passable.set()

    async def handle(batch: list[Message]) -> None:
        handled.extend(Ping.model_validate_json(m.value() or b"").n for m in batch)

    consumer = BatchConsumer(
        settings,
        [topic],
        group,
        handle,
        poll_timeout=0.2,
        config={
            "max.poll.interval.ms": MAX_POLL_INTERVAL_MS,
            "session.timeout.ms": MAX_POLL_INTERVAL_MS,
        },
    )
    task = asyncio.create_task(consumer.run(gate=passable.wait))
    try:
        async with EventProducer(settings) as producer:
            await producer.publish(topic, Ping(n=0))
            await until(lambda: handled == [0])
            passable.clear()  # a dependency went down
            await asyncio.sleep(0.5)  # the loop is in the gate now
            for n in range(1, 21):
                await producer.publish(topic, Ping(n=n))
            held_since = time.monotonic()
            # Held for longer than max.poll.interval.ms: still a member, nothing read.
            await asyncio.sleep(MAX_POLL_INTERVAL_MS / 1000 * 1.5)
            assert handled == [0]
            assert not task.done()
            assert await asyncio.to_thread(
                group_is_stable_with_one_member, settings.kafka_bootstrap, group
            )
            assert await consumer.assignment()
            passable.set()  # it came back
            await until(lambda: len(handled) == 21)
            assert time.monotonic() - held_since > MAX_POLL_INTERVAL_MS / 1000
            assert sorted(handled) == list(range(21))
    finally:
        passable.set()
        await consumer.stop()
        await task
