"""Brings the three servers up, reports on them, and takes them down, in a fixed order.

Kafka is one server here whether it is one node or a cluster (`KafkaCluster`); `status` lists
a cluster's nodes one by one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from foodflow.contracts.topics import ALL_TOPICS
from foodflow.platform.config import Settings
from foodflow.platform.errors import InfraError
from foodflow.tools.infra.kafka import KafkaCluster, check_choice, cluster_nodes
from foodflow.tools.infra.postgres import PostgresServer
from foodflow.tools.infra.redis import RedisServer


class Server(Protocol):
    name: str
    log: Path

    @property
    def address(self) -> str: ...
    def is_running(self) -> bool: ...
    def start(self) -> bool: ...
    def stop(self) -> bool: ...
    def wipe(self) -> None: ...


@dataclass(frozen=True)
class ServerState:
    name: str
    address: str
    running: bool
    log: Path
    changed: bool = False


def servers(settings: Settings) -> list[Server]:
    return [PostgresServer(settings), RedisServer(settings), KafkaCluster(settings)]


def up(
    settings: Settings, report: Callable[[ServerState], None] = lambda s: None
) -> list[ServerState]:
    """Start whatever is not running, wait until each answers, create the topics."""
    check_choice(settings)  # before anything starts: a contradicting KAFKA_BROKERS starts nothing
    states = []
    for server in servers(settings):
        started = server.start()
        state = ServerState(server.name, server.address, True, server.log, changed=started)
        report(state)
        states.append(state)
    from foodflow.platform.kafka.admin import ensure_topics

    try:
        ensure_topics(
            settings.kafka_bootstrap,
            settings.topic_partitions,
            ALL_TOPICS,
            replication_factor=settings.kafka_replication_factor,
            min_insync_replicas=settings.kafka_min_insync_replicas,
        )
    except Exception as exc:
        raise InfraError("kafka", f"creating topics failed: {exc}", "") from exc
    return states


def status(settings: Settings) -> list[ServerState]:
    """Each server up or down; a Kafka cluster as one line per node (`kafka-1`, …)."""
    check_choice(settings)
    states = []
    for server in servers(settings):
        if isinstance(server, KafkaCluster) and settings.kafka_brokers > 1:
            states += [
                ServerState(n.name, n.address, n.is_running(), n.log)
                for n in cluster_nodes(settings)
            ]
        else:
            states.append(ServerState(server.name, server.address, server.is_running(), server.log))
    return states


def down(
    settings: Settings,
    *,
    wipe: bool = False,
    report: Callable[[ServerState], None] = lambda s: None,
) -> None:
    """Stop in reverse order (Kafka first); with `wipe`, delete their data too."""
    check_choice(settings)
    for server in reversed(servers(settings)):
        stopped = server.stop()
        if wipe:
            server.wipe()
        report(ServerState(server.name, server.address, False, server.log, changed=stopped))
