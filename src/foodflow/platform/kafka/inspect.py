"""What an operator asks of Kafka: consumer groups' lag, and what lies on the dead-letter topic.

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
class GroupLag:
    """One consumer group: its state, members, and messages behind per topic."""

    group_id: str
    state: str
    members: int
    lag: int
    by_topic: dict[str, int] = field(default_factory=dict)


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

    def __init__(self, settings: Settings, timeout: float = 5.0) -> None:
        self.timeout = timeout
        common: dict[str, Any] = {
            "bootstrap.servers": settings.kafka_bootstrap,
            "logger": librdkafka_logger(),
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
        members = self._members([g.group_id for g in groups])
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
            for tp in committed.get(group.group_id, []):
                key = (tp.topic, tp.partition)
                if key not in high:
                    continue
                start = tp.offset if tp.offset != OFFSET_INVALID and tp.offset >= 0 else low[key]
                by_topic[tp.topic] = by_topic.get(tp.topic, 0) + max(0, high[key] - start)
            out.append(
                GroupLag(
                    group_id=group.group_id,
                    state=_state_name(group.state),
                    members=members.get(group.group_id, 0),
                    lag=sum(by_topic.values()),
                    by_topic=by_topic,
                )
            )
        return out

    def _members(self, group_ids: Sequence[str]) -> dict[str, int]:
        futures = self._admin.describe_consumer_groups(
            list(group_ids), request_timeout=self.timeout
        )
        counts = {}
        for group_id, future in futures.items():
            try:
                counts[group_id] = len(future.result(timeout=self.timeout).members)
            except KafkaException:
                counts[group_id] = 0
        return counts

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


def _state_name(state: object) -> str:
    """`ConsumerGroupState.STABLE` → "STABLE" (the enum's name; a plain string as is)."""
    return str(getattr(state, "name", state))
