"""Topic creation and broker readiness, used by `foodflow infra up` and by tests.

These are blocking calls (the command line is synchronous); from async code wrap them in
`asyncio.to_thread`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from foodflow.contracts.topics import ALL_TOPICS
from foodflow.platform.errors import InfraError
from foodflow.platform.kafka._logging import librdkafka_logger

log = logging.getLogger(__name__)


def _admin(bootstrap: str) -> AdminClient:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "logger": librdkafka_logger(),
    }
    return AdminClient(config)


def wait_for_kafka(bootstrap: str, timeout: float = 30.0, *, node_id: int | None = None) -> None:
    """Return once the broker answers a metadata request (listing broker `node_id` among the
    registered ones, when given: a node of a cluster is ready once the quorum has taken its
    registration); InfraError after `timeout` seconds."""
    admin = _admin(bootstrap)
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise InfraError("kafka", f"no metadata from {bootstrap} in {timeout:g}s: {last_error}")
        try:
            metadata = admin.list_topics(timeout=min(5.0, max(remaining, 0.1)))
            if metadata.brokers and (node_id is None or node_id in metadata.brokers):
                return
        except KafkaException as exc:
            last_error = exc
        time.sleep(0.2)


def ensure_topics(
    bootstrap: str,
    partitions: int,
    topics: Iterable[str] = ALL_TOPICS,
    timeout: float = 30.0,
    *,
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
) -> list[str]:
    """Create whichever of `topics` do not exist yet; returns the names it created.

    Idempotent: an existing topic is left as it is (its partition count is not changed).
    `min.insync.replicas` is set on the topic itself (not left to the broker's default) so that
    a describe of the topic shows what an acks=all write needs.
    """
    wanted = list(dict.fromkeys(topics))
    admin = _admin(bootstrap)
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [name for name in wanted if name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                name,
                partitions,
                replication_factor,
                config={"min.insync.replicas": str(min_insync_replicas)},
            )
            for name in missing
        ],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            created.append(name)
            log.info(
                "Created topic %s (%d partitions, replication factor %d)",
                name,
                partitions,
                replication_factor,
            )
        except KafkaException as exc:
            # Someone else (auto-creation, a concurrent `infra up`) got there first: fine.
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created


def delete_topics(bootstrap: str, topics: Iterable[str], timeout: float = 30.0) -> None:
    """Delete `topics`, ignoring those that do not exist."""
    names = list(topics)
    if not names:
        return
    admin = _admin(bootstrap)  # must outlive the futures: destroying it fails them
    futures = admin.delete_topics(names, operation_timeout=timeout)
    for future in futures.values():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise
