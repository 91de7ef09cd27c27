"""The real servers started by `foodflow infra up`, exercised through the project's clients."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import asyncpg
import pytest
import redis.asyncio as aioredis
from confluent_kafka import Consumer, Producer, TopicPartition

from foodflow.contracts.topics import ALL_TOPICS
from foodflow.platform.config import Settings
from foodflow.tools.infra import manager

pytestmark = pytest.mark.integration


def foodflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "foodflow.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _consume(settings: Settings, topic: str, group: str, n: int, commit: bool) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got: list[bytes] = []
    try:
        for _ in range(60):
            for msg in consumer.consume(num_messages=n, timeout=0.5):
                if msg.error() is None:
                    got.append(msg.value() or b"")
            if len(got) >= n:
                break
        if commit and got:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return got


def test_kafka_produce_consume_commit_and_reread(infra: Settings) -> None:
    topic = f"test-infra-{uuid.uuid4().hex[:8]}"
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": infra.kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": infra.kafka_bootstrap, "enable.idempotence": True})
    sent = [f"message-{i}".encode() for i in range(5)]
    for value in sent:
        producer.produce(topic, value)
    assert producer.flush(30) == 0

    group = f"group-{uuid.uuid4().hex[:8]}"
    assert _consume(infra, topic, group, 5, commit=True) == sent
    # The group's committed offset sits past all five: a re-join reads nothing more.
    probe = Consumer({"bootstrap.servers": infra.kafka_bootstrap, "group.id": group})
    [committed] = probe.committed([TopicPartition(topic, 0)], timeout=10)
    probe.close()
    assert committed.offset == 5
    # A new group re-reads the topic from the beginning.
    assert _consume(infra, topic, f"other-{uuid.uuid4().hex[:8]}", 5, commit=False) == sent
    admin.delete_topics([topic])


def test_seed_topics_exist_with_configured_partitions(infra: Settings) -> None:
    from confluent_kafka.admin import AdminClient

    topics = (
        AdminClient({"bootstrap.servers": infra.kafka_bootstrap}).list_topics(timeout=10).topics
    )
    for name in ALL_TOPICS:
        assert name in topics
        assert len(topics[name].partitions) == infra.topic_partitions


async def test_postgres_select_and_seeded_menu(infra: Settings) -> None:
    conn = await asyncpg.connect(infra.postgres_dsn)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        items = {r["item_id"] for r in await conn.fetch("SELECT item_id FROM inventory_items")}
        assert {"sushi-set", "pho-bo"} <= items and len(items) >= 14
    finally:
        await conn.close()


async def test_redis_set_get_with_ttl(infra: Settings) -> None:
    client = aioredis.from_url(infra.redis_url)
    key = f"test:{uuid.uuid4()}"
    try:
        await client.set(key, "value", px=300)
        assert await client.get(key) == b"value"
        assert 0 < await client.pttl(key) <= 300
        await asyncio.sleep(0.4)
        assert await client.get(key) is None
    finally:
        await client.aclose()


def test_infra_up_twice_is_harmless(infra: Settings) -> None:
    result = foodflow("infra", "up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("already running") == 3
    assert all(s.running for s in manager.status(infra))


async def test_down_then_up_keeps_the_data(infra: Settings) -> None:
    marker = f"test-{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(infra.postgres_dsn)
    await conn.execute(
        "INSERT INTO inventory_items (item_id, name, price, stock) VALUES ($1, 'marker', 1, 1)",
        marker,
    )
    await conn.close()
    client = aioredis.from_url(infra.redis_url)
    await client.set(marker, "kept")
    await client.aclose()

    down = foodflow("infra", "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not any(s.running for s in manager.status(infra))
    up = foodflow("infra", "up")
    assert up.returncode == 0, up.stdout + up.stderr

    conn = await asyncpg.connect(infra.postgres_dsn)
    try:
        assert (
            await conn.fetchval("SELECT name FROM inventory_items WHERE item_id=$1", marker)
            == "marker"
        )
        await conn.execute("DELETE FROM inventory_items WHERE item_id=$1", marker)
    finally:
        await conn.close()
    client = aioredis.from_url(infra.redis_url)
    try:
        assert await client.get(marker) == b"kept"
        await client.delete(marker)
    finally:
        await client.aclose()
