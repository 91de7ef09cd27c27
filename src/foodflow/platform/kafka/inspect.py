"""What an operator asks of Kafka: consumer groups' lag and members, what lies on the
dead-letter topic, and the state of a cluster (partition leaders, under-replicated partitions,
the active controller).

`KafkaInspector` holds one admin client and one group-less consumer (for peeking at the newest
dead letters), both used from a single thread of its own: every method is blocking and is
meant to be called from a periodic task through `asyncio.to_thread`-like hand-off
(`KafkaInspector.run`). Nothing here joins a group or commits an offset.

Lag is the group's committed offset against the partition's high watermark: what the group has
not yet committed as handled. A partition the group never committed counts as its whole
retained range (the group would read it all from the start).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec
from pydantic import ValidationError

from foodflow.contracts import topics
from foodflow.contracts.orders import DeadLetter
from foodflow.platform.config import Settings
from foodflow.platform.kafka._logging import librdkafka_logger

log = logging.getLogger(__name__)
T = TypeVar("T")

# confluent-kafka's OffsetSpec constructors carry no annotations; built once.
LATEST: OffsetSpec = OffsetSpec.latest()  # type: ignore[no-untyped-call]
EARLIEST: OffsetSpec = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
# Groups listed at most: a broker can hold many (tools, tests); the dashboard shows the first.
MAX_GROUPS = 40


@dataclass(frozen=True)
class GroupMember:
    """One member of a consumer group: who it is, the partitions it was assigned, and how many
    messages those are behind (the group's committed offsets against the high watermarks)."""

    member_id: str
    # `group.instance.id` of a static member (foodflow's consumers: `<group>-<instance>`).
    instance_id: str | None
    client_id: str
    host: str
    partitions: list[tuple[str, int]]
    lag: int


@dataclass(frozen=True)
class GroupLag:
    """One consumer group: its state, members, and messages behind per topic."""

    group_id: str
    state: str
    members: int
    lag: int
    by_topic: dict[str, int] = field(default_factory=dict)
    assignment: list[GroupMember] = field(default_factory=list)


@dataclass(frozen=True)
class ParkedLetter:
    """A dead letter with where it sits on the dead-letter topic (`PARTITION:OFFSET`, the ref
    `foodflow dlq replay` takes)."""

    partition: int
    offset: int
    letter: DeadLetter

    @property
    def ref(self) -> str:
        return f"{self.partition}:{self.offset}"


@dataclass(frozen=True)
class DeadLetterSummary:
    """How many letters the topic retains, and the newest ones (newest first)."""

    count: int
    latest: list[ParkedLetter]


class KafkaInspector:
    """Blocking reads of group offsets, watermarks and the newest dead letters."""

    def __init__(
        self, settings: Settings, timeout: float = 5.0, logger: logging.Logger | None = None
    ) -> None:
        self.timeout = timeout
        common: dict[str, Any] = {
            "bootstrap.servers": settings.kafka_bootstrap,
            # The command line passes a silent one: its answer is the table, not librdkafka's
            # lines about a broker that is down.
            "logger": logger or librdkafka_logger(),
        }
        self._admin = AdminClient(common)
        # A group id is required by the client, never used: the peek only assigns, reads and
        # never commits, so the group holds no offsets and no members.
        self._peek = Consumer(
            {
                **common,
                "group.id": "foodflow-inspector",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
            }
        )
        # One thread: librdkafka's clients are used by a single caller at a time.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-inspector")

    async def run(self, call: Callable[[], T]) -> T:
        """`call()` on the inspector's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, call)

    def close(self) -> None:
        """Close the peek consumer and the thread; calling it twice is harmless."""
        thread, self._thread = self._thread, None  # type: ignore[assignment]
        if thread is None:
            return
        thread.submit(self._peek.close).result()
        thread.shutdown(wait=True)

    # --- lag ---------------------------------------------------------------------------------

    def group_lags(
        self, skip: Callable[[str, str], bool] = lambda group, state: False
    ) -> list[GroupLag]:
        """Every consumer group's lag (the first `MAX_GROUPS` by name), skipping those for
        which `skip(group_id, state)` is True."""
        listing = self._admin.list_consumer_groups(request_timeout=self.timeout).result(
            timeout=self.timeout
        )
        groups = sorted(
            (g for g in listing.valid if not skip(g.group_id, _state_name(g.state))),
            key=lambda g: g.group_id,
        )[:MAX_GROUPS]
        if not groups:
            return []
        described = self._describe([g.group_id for g in groups])
        committed: dict[str, list[TopicPartition]] = {}
        for group in groups:
            futures = self._admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group.group_id)], request_timeout=self.timeout
            )
            for group_id, future in futures.items():
                try:
                    committed[group_id] = list(
                        future.result(timeout=self.timeout).topic_partitions or []
                    )
                except KafkaException as exc:
                    log.warning("Offsets of group %s unreadable: %s", group_id, exc)
                    committed[group_id] = []
        partitions = {(tp.topic, tp.partition) for tps in committed.values() for tp in tps}
        high = self._watermarks(partitions, LATEST)
        low = self._watermarks(partitions, EARLIEST)
        out = []
        for group in groups:
            by_topic: dict[str, int] = {}
            by_partition: dict[tuple[str, int], int] = {}
            for tp in committed.get(group.group_id, []):
                key = (tp.topic, tp.partition)
                if key not in high:
                    continue
                start = tp.offset if tp.offset != OFFSET_INVALID and tp.offset >= 0 else low[key]
                by_partition[key] = max(0, high[key] - start)
                by_topic[tp.topic] = by_topic.get(tp.topic, 0) + by_partition[key]
            members = described.get(group.group_id, [])
            out.append(
                GroupLag(
                    group_id=group.group_id,
                    state=_state_name(group.state),
                    members=len(members),
                    lag=sum(by_topic.values()),
                    by_topic=by_topic,
                    assignment=[_member(m, by_partition) for m in members],
                )
            )
        return out

    def _describe(self, group_ids: Sequence[str]) -> dict[str, list[Any]]:
        """Each group's members (confluent-kafka's MemberDescription); none when unreadable."""
        futures = self._admin.describe_consumer_groups(
            list(group_ids), request_timeout=self.timeout
        )
        members: dict[str, list[Any]] = {}
        for group_id, future in futures.items():
            try:
                members[group_id] = list(future.result(timeout=self.timeout).members)
            except KafkaException:
                members[group_id] = []
        return members

    def _watermarks(
        self, partitions: set[tuple[str, int]], spec: OffsetSpec
    ) -> dict[tuple[str, int], int]:
        if not partitions:
            return {}
        futures = self._admin.list_offsets(
            {TopicPartition(t, p): spec for t, p in partitions}, request_timeout=self.timeout
        )
        out = {}
        for tp, future in futures.items():
            try:
                out[(tp.topic, tp.partition)] = future.result(timeout=self.timeout).offset
            except KafkaException as exc:
                log.warning("Offset of %s[%d] unreadable: %s", tp.topic, tp.partition, exc)
        return out

    # --- dead letters --------------------------------------------------------------------------

    def dead_letters(self, latest: int = 5, topic: str = topics.DEAD_LETTER) -> DeadLetterSummary:
        """How many letters `topic` retains, and its `latest` newest letters (by their time).

        Reads at most `latest` messages per partition, from the end."""
        metadata = self._admin.list_topics(topic, timeout=self.timeout)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            return DeadLetterSummary(0, [])
        partitions = {(topic, p) for p in described.partitions}
        high = self._watermarks(partitions, LATEST)
        low = self._watermarks(partitions, EARLIEST)
        count = sum(max(0, high[k] - low.get(k, 0)) for k in high)
        wanted = {k: max(low.get(k, 0), high[k] - latest) for k in high if high[k] > low.get(k, 0)}
        letters: list[ParkedLetter] = []
        if wanted:
            self._peek.assign([TopicPartition(t, p, offset) for (t, p), offset in wanted.items()])
            remaining = {k: high[k] - offset for k, offset in wanted.items()}
            try:
                letters = self._read(remaining)
            finally:
                self._peek.unassign()
        letters.sort(key=lambda parked: parked.letter.failed_at, reverse=True)
        return DeadLetterSummary(count, letters[:latest])

    def _read(self, remaining: dict[tuple[str, int], int]) -> list[ParkedLetter]:
        letters = []
        budget = self.timeout
        while any(n > 0 for n in remaining.values()) and budget > 0:
            batch = self._peek.consume(sum(remaining.values()), timeout=0.5)
            budget -= 0.5
            for msg in batch:
                if msg.error() is not None:
                    continue
                key = (msg.topic() or "", msg.partition() or 0)
                remaining[key] = remaining.get(key, 1) - 1
                try:
                    letter = DeadLetter.model_validate_json(msg.value() or b"")
                except ValidationError:
                    continue  # not a letter of ours: nothing to show
                letters.append(ParkedLetter(msg.partition() or 0, msg.offset() or 0, letter))
        return letters


def _member(member: Any, lag_by_partition: dict[tuple[str, int], int]) -> GroupMember:
    """A MemberDescription as a GroupMember, its partitions sorted, its lag theirs summed (a
    partition the group never committed counts as all it retains, as in the group's lag)."""
    assigned = getattr(member.assignment, "topic_partitions", None) or []
    partitions = sorted((tp.topic, tp.partition) for tp in assigned)
    return GroupMember(
        member_id=str(member.member_id),
        instance_id=member.group_instance_id or None,
        client_id=str(member.client_id),
        host=str(member.host),
        partitions=partitions,
        lag=sum(lag_by_partition.get(key, 0) for key in partitions),
    )


# --- the cluster -------------------------------------------------------------------------------
# Blocking, one admin client each: for the command line and the chaos tool, which ask once.


@dataclass(frozen=True)
class PartitionState:
    """One partition's replicas as the cluster's metadata has them."""

    topic: str
    partition: int
    leader: int  # -1 while it has none
    replicas: list[int]
    isr: list[int]

    @property
    def under_replicated(self) -> bool:
        return len(self.isr) < len(self.replicas)


def _cluster_admin(settings: Settings, logger: logging.Logger | None) -> AdminClient:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "logger": logger or librdkafka_logger(),
    }
    return AdminClient(config)


def partitions(
    settings: Settings,
    topic: str | None = None,
    timeout: float = 10.0,
    logger: logging.Logger | None = None,
) -> list[PartitionState]:
    """Every partition of `topic` (of every topic, internal ones too, when None), sorted."""
    metadata = _cluster_admin(settings, logger).list_topics(topic, timeout=timeout)
    out = []
    for name, described in metadata.topics.items():
        if described.error is not None:
            continue
        for p in described.partitions.values():
            out.append(PartitionState(name, p.id, p.leader, list(p.replicas), list(p.isrs)))
    return sorted(out, key=lambda p: (p.topic, p.partition))


def partition_leaders(settings: Settings, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """Partition → the node id of its leader (-1 while it has none)."""
    return {p.partition: p.leader for p in partitions(settings, topic, timeout)}


def under_replicated(
    settings: Settings, timeout: float = 10.0, logger: logging.Logger | None = None
) -> list[tuple[str, int]]:
    """(topic, partition) of every partition with fewer in-sync replicas than replicas: one
    that has lost a copy (a node down, or one still catching up after its restart)."""
    return [
        (p.topic, p.partition)
        for p in partitions(settings, None, timeout, logger)
        if p.under_replicated
    ]


def brokers(
    settings: Settings, timeout: float = 10.0, logger: logging.Logger | None = None
) -> dict[int, str]:
    """Node id → address of every broker the cluster has registered and not fenced."""
    metadata = _cluster_admin(settings, logger).list_topics(timeout=timeout)
    return {b.id: f"{b.host}:{b.port}" for b in metadata.brokers.values()}


def active_controller(settings: Settings) -> int | None:
    """The node id of the KRaft quorum's leader (the active controller); None while an election
    runs, or when no node's state is on this machine.

    Not from the brokers: a KRaft broker answers DescribeCluster and Metadata with some live
    broker as "controller" (clients cannot reach controllers through it, KIP-919), and
    librdkafka has no DescribeQuorum (the Java `kafka-metadata-quorum` tool has, at a JVM's
    start-up cost each time, and its jar is not among the broker's). Each node of a local
    cluster persists its view of the election instead: `__cluster_metadata-0/quorum-state`,
    written on every change of epoch before the node acts on it (Raft needs that to survive a
    crash). The highest epoch any node has seen is the current election; its leader, if that
    epoch has one yet, is the active controller. A node killed while leader keeps its stale
    file, but with a lower epoch than the voters that elected its successor."""
    best: tuple[int, int] | None = None  # (epoch, leader id)
    for node_id in range(1, settings.kafka_brokers + 1):
        path = settings.kafka_node_home(node_id) / "data" / "__cluster_metadata-0" / "quorum-state"
        try:
            state = json.loads(path.read_text())
            epoch, leader = int(state["leaderEpoch"]), int(state["leaderId"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not formatted, never started, or caught mid-write: the others tell
        if best is None or epoch > best[0] or (epoch == best[0] and leader >= 0):
            best = (epoch, leader)
    if best is None or best[1] < 0:
        return None
    return best[1]


def _state_name(state: object) -> str:
    """`ConsumerGroupState.STABLE` → "STABLE" (the enum's name; a plain string as is)."""
    return str(getattr(state, "name", state))
