"""Brings the three servers up, reports on them, and takes them down, in a fixed order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from foodflow.contracts.topics import ALL_TOPICS
from foodflow.platform.config import Settings
from foodflow.platform.errors import InfraError
from foodflow.tools.infra.kafka import KafkaServer
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
    return [PostgresServer(settings), RedisServer(settings), KafkaServer(settings)]


def up(
    settings: Settings, report: Callable[[ServerState], None] = lambda s: None
) -> list[ServerState]:
    """Start whatever is not running, wait until each answers, create the topics."""
    states = []
    for server in servers(settings):
        started = server.start()
        state = ServerState(server.name, server.address, True, server.log, changed=started)
        report(state)
        states.append(state)
    from foodflow.platform.kafka.admin import ensure_topics

    try:
        ensure_topics(settings.kafka_bootstrap, settings.topic_partitions, ALL_TOPICS)
    except Exception as exc:
        raise InfraError("kafka", f"creating topics failed: {exc}", "") from exc
    return states


def status(settings: Settings) -> list[ServerState]:
    return [ServerState(s.name, s.address, s.is_running(), s.log) for s in servers(settings)]


def down(
    settings: Settings,
    *,
    wipe: bool = False,
    report: Callable[[ServerState], None] = lambda s: None,
) -> None:
    """Stop in reverse order (Kafka first); with `wipe`, delete their data too."""
    for server in reversed(servers(settings)):
        stopped = server.stop()
        if wipe:
            server.wipe()
        report(ServerState(server.name, server.address, False, server.log, changed=stopped))
