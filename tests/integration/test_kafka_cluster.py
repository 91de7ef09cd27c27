"""A real three-node Kafka cluster, as `foodflow infra up --brokers 3` runs it: replicated topics,
an acknowledged write that survives a node's kill -9 (the active controller's), the node's
return with nothing under-replicated, and `foodflow status` reading it all.

The module starts its own cluster (one for all its tests) beside the session's servers: ports
KAFKA_PORT + 300 (and +310, +320; controllers one above each), state in
`<state>/kafka-cluster-test`, wiped at the start (its files stay after, for a post-mortem).
Slow (three JVMs, a kill and a restart: ~4 min on a loaded machine): marked `cluster`, so a
run can select it (`-m cluster`) or leave it out (`-m "not cluster"`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from foodflow.contracts.topics import ALL_TOPICS
from foodflow.platform.config import Settings
from foodflow.platform.kafka import inspect
from foodflow.platform.kafka.admin import delete_topics, ensure_topics
from foodflow.tools.infra.kafka import KafkaCluster, cluster_nodes

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

PORT_OFFSET = 300
# A node restarted at a load of 10 on two cores took 47 s to be ready; the ISR then refills.
REJOIN_SECONDS = 180.0
# What a commit meets while the group's coordinator is not settled yet (librdkafka does not
# call them retriable, but they are).
WHILE_COORDINATOR_MOVES = (
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
)


@pytest.fixture(scope="module")
def cluster(settings: Settings) -> Iterator[Settings]:
    """Three nodes of our own, with the topics `infra up` creates; stopped and wiped after."""
    state = settings.state_dir / "kafka-cluster-test"
    state.mkdir(parents=True, exist_ok=True)
    cache = state / "cache"
    if not cache.exists():  # the jars the session's Kafka was started from: no download
        (settings.state_dir / "cache").mkdir(parents=True, exist_ok=True)
        cache.symlink_to(settings.state_dir / "cache")
    ours = Settings(
        FOODFLOW_STATE_DIR=state,
        KAFKA_HOST=settings.kafka_host,
        KAFKA_PORT=settings.kafka_port + PORT_OFFSET,
        KAFKA_CONTROLLER_PORT=settings.kafka_controller_port + PORT_OFFSET,
        KAFKA_BROKERS=3,
    )
    server = KafkaCluster(ours)
    server.stop()  # a run that was interrupted before its end
    server.wipe()  # a fresh cluster each run; the last run's files stay for a post-mortem
    try:
        server.start()
        ensure_topics(
            ours.kafka_bootstrap,
            ours.topic_partitions,
            ALL_TOPICS,
            replication_factor=ours.kafka_replication_factor,
            min_insync_replicas=ours.kafka_min_insync_replicas,
        )
        # A created topic reaches each broker's metadata a moment after the controller says
        # it exists: a metadata request answered by a broker that had not caught up showed no
        # partition at all (a clean-clone CI run met it). Wait until every topic shows all of
        # its partitions, each with a leader.
        deadline = time.monotonic() + 60
        while not all(
            len(states := inspect.partitions(ours, topic)) == ours.topic_partitions
            and all(p.leader in (1, 2, 3) for p in states)
            for topic in ALL_TOPICS
        ):
            assert time.monotonic() < deadline, "the topics' metadata never showed every partition"
            time.sleep(0.5)
        yield ours
    finally:
        server.stop()


def test_every_topic_has_three_replicas_on_three_racks_and_needs_two(cluster: Settings) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.kafka_bootstrap})
    described = admin.describe_cluster(request_timeout=30).result(timeout=30)
    assert sorted((n.id, n.rack) for n in described.nodes) == [(1, "r1"), (2, "r2"), (3, "r3")]
    for topic in ALL_TOPICS:
        states = inspect.partitions(cluster, topic)
        assert len(states) == 12
        for p in states:
            assert sorted(p.replicas) == [1, 2, 3] and sorted(p.isr) == [1, 2, 3]
        # Leaders spread over the three nodes (no node leads everything).
        assert {p.leader for p in states} == {1, 2, 3}
        resource = ConfigResource("topic", topic)
        config = admin.describe_configs([resource])[resource].result(timeout=30)
        assert config["min.insync.replicas"].value == "2"
    assert inspect.under_replicated(cluster) == []
    assert inspect.active_controller(cluster) in (1, 2, 3)


def test_the_consumer_offsets_are_replicated_three_times(cluster: Settings) -> None:
    """The internal topic a group's commits land on is created on first use: RF 3 then."""
    topic = f"test-offsets-{uuid.uuid4().hex[:8]}"
    ensure_topics(cluster.kafka_bootstrap, 3, [topic], replication_factor=3, min_insync_replicas=2)
    consumer = Consumer({"bootstrap.servers": cluster.kafka_bootstrap, "group.id": topic})
    try:
        deadline = time.monotonic() + 60
        while True:  # the first commit creates the topic: NOT_COORDINATOR until it has leaders
            try:
                consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
                break
            except KafkaException as exc:
                if exc.args[0].code() not in WHILE_COORDINATOR_MOVES or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        offsets = inspect.partitions(cluster, "__consumer_offsets")
        assert offsets and all(len(p.replicas) == 3 for p in offsets)
    finally:
        consumer.close()
        delete_topics(cluster.kafka_bootstrap, [topic])


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "delivery.timeout.ms": 60000,
        }
    )
    failed: list[str] = []
    for i, value in enumerate(values):
        producer.produce(
            topic,
            value,
            key=str(i).encode(),
            on_delivery=lambda err, _msg: failed.append(str(err)) if err else None,
        )
        producer.poll(0)
    assert producer.flush(90) == 0
    assert failed == []


def _read_all(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    got: list[bytes] = []
    try:
        deadline = time.monotonic() + 90
        while len(got) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=1.0):
                if msg.error() is None:
                    got.append(msg.value() or b"")
        # Nothing beyond: a duplicate would arrive with the rest.
        for msg in consumer.consume(num_messages=1000, timeout=2.0):
            if msg.error() is None:
                got.append(msg.value() or b"")
    finally:
        consumer.close()
    return got


def test_an_acknowledged_write_survives_the_active_controllers_kill_9_and_it_rejoins(
    cluster: Settings,
) -> None:
    """Kill -9 the node that is the active controller (and leads a third of the partitions)
    between two rounds of acks=all writes: a new controller is elected, the partitions it led
    get new leaders from the in-sync replicas, the writes go on (2 of 3 in sync is enough), no
    acknowledged message is lost or doubled; restarted with its data, the node catches up and
    nothing is under-replicated."""
    topic = f"test-survive-{uuid.uuid4().hex[:8]}"
    ensure_topics(cluster.kafka_bootstrap, 12, [topic], replication_factor=3, min_insync_replicas=2)
    before = [f"before-{i}".encode() for i in range(2000)]
    after = [f"after-{i}".encode() for i in range(2000)]
    _produce(cluster.kafka_bootstrap, topic, before)

    controller = inspect.active_controller(cluster)
    assert controller is not None
    leaders = inspect.partition_leaders(cluster, topic)
    assert controller in leaders.values()
    victim = next(n for n in cluster_nodes(cluster) if n.node_id == controller)
    pid = victim.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    while victim.pid() is not None:
        time.sleep(0.05)

    _produce(cluster.kafka_bootstrap, topic, after)
    new_controller = inspect.active_controller(cluster)
    assert new_controller not in (None, controller)
    moved = inspect.partition_leaders(cluster, topic)
    assert controller not in moved.values() and -1 not in moved.values()
    # The cluster noticed (once the killed broker's session expired): fewer in-sync replicas.
    deadline = time.monotonic() + 60
    while not inspect.under_replicated(cluster) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert (topic, 0) in inspect.under_replicated(cluster)

    got = _read_all(cluster.kafka_bootstrap, topic, len(before) + len(after))
    assert sorted(got) == sorted(before + after)  # every acknowledged message, once

    assert victim.start() is True
    deadline = time.monotonic() + REJOIN_SECONDS
    while inspect.under_replicated(cluster) and time.monotonic() < deadline:
        time.sleep(1.0)
    assert inspect.under_replicated(cluster) == []
    print(f"killed node {controller}: back and in sync {time.monotonic() - killed_at:.0f}s later")
    assert {n.node_id for n in cluster_nodes(cluster) if n.is_running()} == {1, 2, 3}
    delete_topics(cluster.kafka_bootstrap, [topic])


def _foodflow(cluster: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m foodflow …` against the cluster's state directory, as a user would run it
    there: KAFKA_BROKERS unset unless given, so the recorded count must be found."""
    environ = {k: v for k, v in os.environ.items() if k != "KAFKA_BROKERS"}
    environ |= {
        "FOODFLOW_STATE_DIR": str(cluster.state_dir),
        "KAFKA_PORT": str(cluster.kafka_port),
        "KAFKA_CONTROLLER_PORT": str(cluster.kafka_controller_port),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "foodflow", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=environ,
        cwd=Path(__file__).parent,  # no .env of a checkout
    )


def test_status_shows_the_brokers_the_controller_and_a_groups_assignment(
    cluster: Settings,
) -> None:
    """Three consumers of one group share a 12-partition topic, four partitions each; a plain
    `foodflow status --json` run from the cluster's state directory finds the cluster (the
    recorded broker count) and shows the brokers, the controller and the assignment."""
    topic = f"test-status-{uuid.uuid4().hex[:8]}"
    group = f"group-{uuid.uuid4().hex[:8]}"
    ensure_topics(cluster.kafka_bootstrap, 12, [topic], replication_factor=3, min_insync_replicas=2)
    _produce(cluster.kafka_bootstrap, topic, [b"x"] * 24)
    consumers = [
        Consumer(
            {
                "bootstrap.servers": cluster.kafka_bootstrap,
                "group.id": group,
                "group.instance.id": f"{group}-{i}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        for i in range(3)
    ]
    try:
        for consumer in consumers:
            consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for consumer in consumers:
                consumer.poll(0.2)
            if all(len(c.assignment()) == 4 for c in consumers):
                break
        assert [len(c.assignment()) for c in consumers] == [4, 4, 4]
        for consumer in consumers:  # offset 0 committed: the lag is all each partition holds
            consumer.commit(
                offsets=[TopicPartition(topic, tp.partition, 0) for tp in consumer.assignment()],
                asynchronous=False,
            )

        done = _foodflow(cluster, "status", "--json")
        # PostgreSQL, Redis and the services do not run in this state directory: exit 3.
        assert done.returncode == 3, done.stderr
        kafka = json.loads(done.stdout)["kafka"]
        assert [(b["node_id"], b["up"], b["rack"]) for b in kafka["brokers"]] == [
            (1, True, "r1"),
            (2, True, "r2"),
            (3, True, "r3"),
        ]
        assert kafka["active_controller"] in (1, 2, 3)
        assert [b["node_id"] for b in kafka["brokers"] if b["controller"]] == [
            kafka["active_controller"]
        ]
        assert (kafka["replication_factor"], kafka["min_insync_replicas"]) == (3, 2)
        assert kafka["under_replicated"] == [] and kafka["offline"] == []
        [ours] = [g for g in kafka["groups"] if g["group_id"] == group]
        members = {m["instance_id"]: m for m in ours["members"]}
        assert set(members) == {f"{group}-{i}" for i in range(3)}
        assigned = sorted(p["partition"] for m in members.values() for p in m["partitions"])
        assert assigned == list(range(12))
        assert all(len(m["partitions"]) == 4 for m in members.values())
        # Each member's lag is all its partitions hold: 24 messages in all.
        assert sum(m["lag"] for m in members.values()) == ours["lag"] == 24

        table = _foodflow(cluster, "status", COLUMNS="200")
        assert "min.insync.replicas 2" in table.stdout
        assert "no under-replicated partitions" in table.stdout
        assert f"{group}-0" in table.stdout
    finally:
        for consumer in consumers:
            consumer.close()
        delete_topics(cluster.kafka_bootstrap, [topic])


def test_a_broker_count_that_contradicts_the_running_cluster_is_refused(
    cluster: Settings,
) -> None:
    done = _foodflow(cluster, "infra", "up", "--brokers", "1")
    assert done.returncode == 1
    assert "KAFKA_BROKERS=1, but a 3-broker cluster runs from" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert all(n.is_running() for n in cluster_nodes(cluster))  # and nothing was touched
