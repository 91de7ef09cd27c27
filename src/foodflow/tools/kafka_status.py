"""What `foodflow status` says about Kafka: each broker (up, the active controller), the
partitions that have lost a replica, and each consumer group's members with the partitions
assigned to them and their lag.

Read once per command, with short timeouts: a status asked while a broker is down must still
answer within seconds (librdkafka asks the brokers that are up).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka import KafkaException

from foodflow.platform.config import Settings
from foodflow.platform.kafka import inspect
from foodflow.platform.kafka.inspect import GroupLag
from foodflow.tools.cli_errors import QUIET
from foodflow.tools.infra.kafka import cluster_nodes, rack

TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class BrokerState:
    node_id: int
    address: str
    # Its process runs here and the cluster has it registered (unfenced) as a broker.
    up: bool
    controller: bool
    rack: str | None


@dataclass(frozen=True)
class KafkaStatus:
    brokers: list[BrokerState]
    active_controller: int | None
    replication_factor: int
    min_insync_replicas: int
    partitions: int
    under_replicated: list[tuple[str, int]]
    # Partitions with no leader at all: neither readable nor writable until one is elected.
    offline: list[tuple[str, int]]
    groups: list[GroupLag] = field(default_factory=list)
    # What could not be read (a group listing that timed out), said rather than hidden.
    errors: list[str] = field(default_factory=list)


def kafka_status(settings: Settings) -> KafkaStatus:
    """The cluster as its metadata and this machine's nodes describe it. Raises KafkaException
    when no broker answers."""
    states = inspect.partitions(settings, None, TIMEOUT_SECONDS, logger=QUIET)
    registered = inspect.brokers(settings, TIMEOUT_SECONDS, logger=QUIET)
    controller = inspect.active_controller(settings)
    nodes = {n.node_id: n for n in cluster_nodes(settings)}
    cluster = settings.kafka_brokers > 1
    brokers = []
    for node_id in sorted(set(nodes) | set(registered)):
        node = nodes.get(node_id)
        local_up = node.is_running() if node is not None else True
        address = node.address if node is not None else registered[node_id]
        brokers.append(
            BrokerState(
                node_id=node_id,
                address=address,
                up=local_up and node_id in registered,
                controller=node_id == controller,
                rack=rack(node_id) if cluster else None,
            )
        )
    errors: list[str] = []
    groups: list[GroupLag] = []
    inspector = inspect.KafkaInspector(settings, timeout=TIMEOUT_SECONDS, logger=QUIET)
    try:
        groups = inspector.group_lags()
    except KafkaException as exc:
        errors.append(f"consumer groups unreadable: {exc}")
    finally:
        inspector.close()
    return KafkaStatus(
        brokers=brokers,
        active_controller=controller,
        replication_factor=settings.kafka_replication_factor,
        min_insync_replicas=settings.kafka_min_insync_replicas,
        partitions=settings.topic_partitions,
        under_replicated=[(p.topic, p.partition) for p in states if p.under_replicated],
        offline=[(p.topic, p.partition) for p in states if p.leader < 0],
        groups=groups,
        errors=errors,
    )


def partition_ranges(partitions: list[tuple[str, int]]) -> str:
    """`[("validated_orders", 0), ("validated_orders", 1), ("validated_orders", 2), ("x", 5)]`
    → "validated_orders[0-2] x[5]": a member's assignment on one line."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(partitions):
        by_topic.setdefault(topic, []).append(partition)
    parts = []
    for topic, numbers in by_topic.items():
        runs: list[str] = []
        start = prev = numbers[0]
        for n in [*numbers[1:], None]:
            if n is not None and n == prev + 1:
                prev = n
                continue
            runs.append(str(start) if start == prev else f"{start}-{prev}")
            if n is not None:
                start = prev = n
        parts.append(f"{topic}[{','.join(runs)}]")
    return " ".join(parts)
