"""A consumer-group client that hands batches to a coroutine and commits after it returns.

Every call on the underlying `confluent_kafka.Consumer` runs on one dedicated thread, so the
event loop never blocks and librdkafka sees a single caller (rebalance callbacks included).
Offsets are committed synchronously after `handle_batch` returns (batches finished within
`KAFKA_COMMIT_INTERVAL_MS` of each other share one commit): at-least-once delivery, so
handlers must be idempotent. A batch that fails for a reason other than an outage is bisected
(`foodflow.platform.kafka.poison`): a message that fails alone `POISON_ATTEMPTS` times is
dead-lettered and committed past, and the rest of the batch is handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from foodflow.platform.config import Settings
from foodflow.platform.kafka._logging import librdkafka_logger
from foodflow.platform.kafka.dlq import SourceRecord, source_of
from foodflow.platform.kafka.poison import PoisonIsolator
from foodflow.platform.retry import backoff_delay, retry_async

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[Message]], Coroutine[Any, Any, None]]
# Awaited before each poll: returns (its result ignored) when new messages may be taken.
Gate = Callable[[], Awaitable[object]]
T = TypeVar("T")

# Backoff after a failed handle_batch, before the same messages are tried again.
RETRY_BASE_SECONDS = 0.5
RETRY_CAP_SECONDS = 30.0
COMMIT_ATTEMPTS = 3
COMMIT_RETRY_BASE_SECONDS = 0.2


class DeadLetterSink(Protocol):
    """Where a consumer parks a message that failed alone `POISON_ATTEMPTS` times
    (`foodflow.platform.kafka.dlq.DeadLetterPublisher`)."""

    async def park(self, msg: Message, reason: str) -> None:
        """Publish `msg`'s dead letter with `reason` (once per process) and return after the ack."""
        ...

    def committed(self, offsets: Sequence[TopicPartition]) -> None:
        """The consumer committed `offsets`: what lies before them is never read again."""
        ...


class BatchConsumer:
    """Consume `topics` as `group_id` in batches of up to `batch_size` messages.

    `run()` loops until `stop()`: consume what has arrived (waiting at most `poll_timeout`
    seconds for the first message), drop error events (partition EOF and the like, logged),
    `await handle_batch(messages)`, then commit the batch's offsets (in order, at most every
    `KAFKA_COMMIT_INTERVAL_MS`). If `handle_batch` raises because a dependency is down
    (`poison.is_outage`), nothing is committed: the consumer seeks back to the batch's first
    offsets and retries it after a capped, jittered backoff. Any other failure is bisected down
    to the message at fault, which `dead_letter.park` gets after `poison_attempts` failures
    alone (without a sink it is logged and skipped) and which is then committed past like a
    handled one. `stop()` lets the current batch finish and commit, then leaves the group and
    closes.
    """

    def __init__(
        self,
        settings: Settings,
        topics: Sequence[str],
        group_id: str,
        handle_batch: BatchHandler,
        *,
        batch_size: int | None = None,
        poll_timeout: float = 1.0,
        max_batches_in_flight: int = 1,
        max_messages_in_flight: int | None = None,
        client_id: str | None = None,
        config: Mapping[str, Any] | None = None,
        static_membership: bool = True,
        dead_letter: DeadLetterSink | None = None,
        poison_attempts: int | None = None,
    ) -> None:
        self.topics = list(topics)
        self.group_id = group_id
        self.batch_size = batch_size or settings.consume_batch_size
        self.linger = settings.kafka_consume_linger_ms / 1000
        self._last_polled = -self.linger  # time.monotonic() of the last batch taken
        self.poll_timeout = poll_timeout
        self.max_batches_in_flight = max(1, max_batches_in_flight)
        # Read-ahead is bounded by messages too: under light load batches hold one message
        # each, and a window counted in batches alone would cap the orders in hand.
        self.max_messages_in_flight = max_messages_in_flight
        self._dead_letter = dead_letter
        self._isolate = PoisonIsolator(
            handle_batch,
            self._park,
            attempts=poison_attempts or settings.poison_attempts,
            group=group_id,
        )
        # Messages parked by this consumer: a batch handed back after an outage is read again,
        # and they are not handed to the handler a second time.
        self._parked = SourceRecord()
        self._config: dict[str, Any] = {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": group_id,
            "client.id": client_id or f"foodflow-{group_id}-{os.getpid()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            # The broker answers a fetch once it has this much, or after this wait (1 byte and
            # 500 ms by default: at once when there is data, a long poll when there is none).
            "fetch.min.bytes": settings.kafka_fetch_min_bytes,
            "fetch.wait.max.ms": settings.kafka_fetch_wait_ms,
            "logger": librdkafka_logger(),
        }
        if static_membership:
            # A restarted instance takes its partitions straight back, with no rebalance; a dead
            # one's go to the others after the session timeout. Two live processes with one id
            # fence each other (docs/reliability.md, failover). A group of one process (the
            # gateway's dashboard feed, a new group per process) gains nothing from it, and
            # keeps librdkafka's longer default session, which outlasts a broker restart.
            self._config["group.instance.id"] = f"{group_id}-{settings.instance}"
            self._config["session.timeout.ms"] = settings.kafka_session_timeout_ms
        self._config.update(config or {})
        self._consumer: Consumer | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = asyncio.Event()
        self._run_finished: asyncio.Event | None = None
        self._failures = 0
        self.last_batch_at: float | None = None
        """Wall-clock time (time.time()) the last batch was handled (its offsets are committed
        within `commit_interval` of that)."""
        self.batches_handled = 0
        self.messages_handled = 0
        # Offsets of handled batches are committed at most every `commit_interval` seconds
        # (and at once on stop or before a failed batch is handed back): one commit per small
        # batch was a large share of the broker's work at low rates. A crash replays at most
        # that much more, which the idempotent handlers absorb (at-least-once, as before).
        self.commit_interval = settings.kafka_commit_interval_ms / 1000
        self._staged: dict[tuple[str, int], int] = {}
        self._last_commit = time.monotonic()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        """True while `run()` is looping."""
        return self._run_finished is not None and not self._run_finished.is_set()

    async def start(self) -> None:
        """Create the client and subscribe; partitions are assigned on the first consume."""
        if self._consumer is not None:
            return
        self._stopping.clear()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-consumer")
        self._consumer = Consumer(self._config)
        await self._call(self._consumer.subscribe, self.topics)

    async def stop(self) -> None:
        """Finish and commit the batch in hand, leave the group, close. Safe to call twice."""
        self._stopping.set()
        if self._run_finished is not None:
            await self._run_finished.wait()
        consumer, self._consumer = self._consumer, None
        executor, self._executor = self._executor, None
        if consumer is not None and executor is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(executor, consumer.close)
        if executor is not None:
            executor.shutdown(wait=False)

    async def run(self, gate: Gate | None = None) -> None:
        """Consume, handle and commit batches until `stop()` is called.

        Up to `max_batches_in_flight` batches are handled at once: the next batch is read while
        earlier ones are still in hand, so one slow message does not hold the next batch back.
        Offsets are still committed in order: a batch's offsets only once it and every batch
        read before it are done. With a `gate`, nothing new is read while it waits (see
        `_hold`); batches in hand go on.
        """
        if self.running:
            raise RuntimeError("BatchConsumer.run() is already running")
        finished = self._run_finished = asyncio.Event()
        in_flight: deque[tuple[list[Message], asyncio.Task[None]]] = deque()
        try:
            await self.start()
            log.info("Consuming %s as group %s", ",".join(self.topics), self.group_id)
            while not self._stopping.is_set():
                consumer = self._consumer
                assert consumer is not None
                if not await self._settle(consumer, in_flight, wait_for_head=self._full(in_flight)):
                    continue  # a batch failed: everything in hand was handed back
                if self._full(in_flight):
                    continue
                if gate is not None:
                    await self._hold(consumer, gate)
                # While batches are in hand, poll briefly so finished ones commit promptly.
                timeout = min(self.poll_timeout, 0.05) if in_flight else self.poll_timeout
                polled = await self._call(
                    _consume_available,
                    consumer,
                    self.batch_size,
                    timeout,
                    self._last_polled + self.linger,
                )
                if polled:
                    self._last_polled = time.monotonic()
                try:
                    batch = [msg for msg in polled if not _is_error(msg)]
                except FatalConsumerError as exc:
                    await self._renew(in_flight, exc)
                    continue
                if batch:
                    in_flight.append((batch, asyncio.create_task(self._handle(batch))))
            if self._consumer is not None:
                await self._settle(self._consumer, in_flight, drain=True)
        finally:
            for _, task in in_flight:
                task.cancel()
            finished.set()

    async def _renew(
        self, in_flight: deque[tuple[list[Message], asyncio.Task[None]]], exc: BaseException
    ) -> None:
        """The client hit a fatal error and is unusable (librdkafka: a new instance must be
        made). The one seen: a static member whose group coordinator died (a broker killed)
        timed out of its session and was fenced by its own rejoin; the client then never
        consumed again while the service answered ready, and every order after it went
        unpersisted. Batches in hand finish (their offsets cannot be committed by this client:
        the new one re-reads them, which the idempotent handlers absorb), the client is closed
        and a new one, with the same group.instance.id, joins in its place."""
        log.error("Kafka consumer of %s failed fatally (%s); a new one joins", self.group_id, exc)
        await asyncio.gather(*(task for _, task in in_flight), return_exceptions=True)
        in_flight.clear()
        self._staged.clear()
        consumer, self._consumer = self._consumer, None
        executor, self._executor = self._executor, None
        if consumer is not None and executor is not None:
            loop = asyncio.get_running_loop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(loop.run_in_executor(executor, consumer.close), 30.0)
        if executor is not None:
            executor.shutdown(wait=False)
        await self.start()

    async def _hold(self, consumer: Consumer, gate: Gate) -> None:
        """Return when `gate()` does. While it waits, the assigned partitions are paused and
        still polled every `poll_timeout`, so the member stays in its group past
        `max.poll.interval.ms`; a message polled all the same (a partition assigned meanwhile)
        is sought back to, to be read after the resume. Batches in hand commit after it."""
        passable = asyncio.ensure_future(gate())
        if (await asyncio.wait({passable}, timeout=0))[0]:
            passable.result()
            return
        paused_at = time.monotonic()
        await self._call(consumer.pause, await self._call(consumer.assignment))
        log.warning("Consuming %s paused: a dependency is unavailable", ",".join(self.topics))
        try:
            while not (await asyncio.wait({passable}, timeout=self.poll_timeout))[0]:
                if self._stopping.is_set():
                    return
                stray = await self._call(consumer.consume, self.batch_size, 0)
                await self._call(_seek_back, consumer, [m for m in stray if not _is_error(m)])
            passable.result()
        finally:
            passable.cancel()
            await self._call(consumer.resume, await self._call(consumer.assignment))
            log.warning(
                "Consuming %s resumed after %.1fs",
                ",".join(self.topics),
                time.monotonic() - paused_at,
            )

    async def _handle(self, batch: list[Message]) -> None:
        """Hand `batch` to the handler, bisecting it if it fails; skip what was parked."""
        fresh = [msg for msg in batch if msg not in self._parked]
        if fresh:
            await self._isolate(fresh)

    async def _park(self, msg: Message, reason: str) -> None:
        if self._dead_letter is not None:
            await self._dead_letter.park(msg, reason)
        else:
            log.error("Skipping %s[%d]@%d (no dead-letter topic): %s", *source_of(msg), reason)
        self._parked.add(msg)

    def _full(self, in_flight: deque[tuple[list[Message], asyncio.Task[None]]]) -> bool:
        if len(in_flight) >= self.max_batches_in_flight:
            return True
        limit = self.max_messages_in_flight
        return limit is not None and sum(len(batch) for batch, _ in in_flight) >= limit

    async def _settle(
        self,
        consumer: Consumer,
        in_flight: deque[tuple[list[Message], asyncio.Task[None]]],
        *,
        wait_for_head: bool = False,
        drain: bool = False,
    ) -> bool:
        """Take finished batches from the oldest on and stage their offsets, committed together
        once `commit_interval` has passed (at once with `drain`); False when one failed and
        everything in hand was handed back."""
        done: list[Message] = []
        batches = 0
        while in_flight and (in_flight[0][1].done() or wait_for_head or drain):
            batch, task = in_flight[0]
            wait_for_head = False
            try:
                await task
            except Exception:
                self._stage(done)  # what finished before the failure is committed all the same
                await self._commit_staged(consumer)
                await self._hand_back(consumer, in_flight)
                return False
            in_flight.popleft()
            self._failures = 0
            done.extend(batch)
            batches += 1
        if done:
            self._stage(done)
            self.last_batch_at = time.time()
            self.batches_handled += batches
            self.messages_handled += len(done)
        if drain or time.monotonic() - self._last_commit >= self.commit_interval:
            await self._commit_staged(consumer)
        return True

    def _stage(self, messages: list[Message]) -> None:
        """Remember the offsets to commit after `messages` (handled, in order)."""
        for tp in next_offsets(messages):
            self._staged[(tp.topic, tp.partition)] = tp.offset

    async def _commit_staged(self, consumer: Consumer) -> None:
        self._last_commit = time.monotonic()
        if not self._staged:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._staged.items()]
        self._staged.clear()
        if await self._commit(consumer, offsets):
            self._parked.committed(offsets)
            if self._dead_letter is not None:
                self._dead_letter.committed(offsets)

    async def _hand_back(
        self, consumer: Consumer, in_flight: deque[tuple[list[Message], asyncio.Task[None]]]
    ) -> None:
        """The oldest batch failed for an outage (or its dead letter could not be sent): let the
        others finish, then re-read all of them later."""
        await asyncio.gather(*(task for _, task in in_flight), return_exceptions=True)
        messages = [msg for batch, _ in in_flight for msg in batch]
        in_flight.clear()
        self._failures += 1
        # After failure n: up to RETRY_BASE_SECONDS * 2**n, capped at RETRY_CAP_SECONDS.
        delay = backoff_delay(self._failures + 1, RETRY_BASE_SECONDS, RETRY_CAP_SECONDS)
        log.exception(
            "Handling %d message(s) failed: a dependency is unavailable (attempt %d); "
            "retrying them all in %.1fs",
            len(messages),
            self._failures,
            delay,
        )
        await self._call(_seek_back, consumer, messages)
        # Sleep, but wake at once on stop(): the messages stay uncommitted for the next owner.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    async def _commit(self, consumer: Consumer, offsets: list[TopicPartition]) -> bool:
        """Commit `offsets`; False (logged) when the commit failed."""
        try:
            await retry_async(
                functools.partial(self._call, consumer.commit, offsets=offsets, asynchronous=False),
                retry_on=(KafkaException,),
                retry_if=_retriable,
                attempts=COMMIT_ATTEMPTS,
                base_delay=COMMIT_RETRY_BASE_SECONDS,
                max_delay=COMMIT_RETRY_BASE_SECONDS * COMMIT_ATTEMPTS,
                what="Committing offsets",
            )
        except KafkaException as exc:
            # Lost the partitions (rebalance) or the broker: the next owner re-reads this
            # batch, which the idempotent handler absorbs.
            error: KafkaError = exc.args[0]
            log.warning("Committing offsets failed: %s", error.str())
            return False
        return True

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._executor is None:
            raise RuntimeError("BatchConsumer is not started")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def assignment(self) -> list[TopicPartition]:
        """The partitions currently assigned to this member."""
        if self._consumer is None:
            return []
        consumer = self._consumer
        return await self._call(consumer.assignment)

    async def lag(self) -> dict[tuple[str, int], int]:
        """Messages not yet consumed per assigned partition, from cached high watermarks."""
        consumer = self._consumer
        if consumer is None:
            return {}

        def compute() -> dict[tuple[str, int], int]:
            partitions = consumer.assignment()
            if not partitions:
                return {}
            result = {}
            for tp in consumer.position(partitions):
                low, high = consumer.get_watermark_offsets(tp, cached=True)
                position = tp.offset if tp.offset >= 0 else low
                if high >= 0 and position >= 0:
                    result[(tp.topic, tp.partition)] = max(0, high - position)
            return result

        return await self._call(compute)


def _consume_available(
    consumer: Consumer, most: int, timeout: float, not_before: float = 0.0
) -> list[Message]:
    """Up to `most` messages: all that are fetched already, else the first to arrive within
    `timeout`; then, short of `most` and before `not_before` (time.monotonic()), what else
    arrives until then. (`consume(most, timeout)` would wait the whole timeout for `most`
    messages: up to a second of latency for every order at low rates.)

    `not_before` is the consumer's linger: a batch at most every KAFKA_CONSUME_LINGER_MS, so
    a steady trickle is handed over a few messages at a time instead of one by one (each batch
    costs its handler requests and a transaction), while the first message after a quiet spell
    goes at once and an idle consumer waits in a long fetch (KAFKA_FETCH_WAIT_MS)."""
    batch: list[Message] = consumer.consume(most, 0)
    if not batch:
        first = consumer.poll(timeout)
        if first is None:
            return []
        batch = [first]
    if len(batch) < most:  # what came with it, and until `not_before` what comes after it
        batch += consumer.consume(most - len(batch), max(0.0, not_before - time.monotonic()))
    return batch


def next_offsets(batch: Sequence[Message]) -> list[TopicPartition]:
    """The offsets to commit after `batch`: one past the highest offset per partition."""
    highest: dict[tuple[str, int], int] = {}
    for msg in batch:
        key = (msg.topic() or "", msg.partition() or 0)
        offset = msg.offset()
        if offset is not None and offset >= highest.get(key, -1):
            highest[key] = offset
    return [TopicPartition(topic, part, offset + 1) for (topic, part), offset in highest.items()]


def _seek_back(consumer: Consumer, batch: Sequence[Message]) -> None:
    lowest: dict[tuple[str, int], int] = {}
    for msg in batch:
        key = (msg.topic() or "", msg.partition() or 0)
        offset = msg.offset()
        if offset is not None and offset < lowest.get(key, offset + 1):
            lowest[key] = offset
    for (topic, part), offset in lowest.items():
        try:
            consumer.seek(TopicPartition(topic, part, offset))
        except KafkaException as exc:  # no longer assigned: the new owner starts from the commit
            log.debug("Seek to %s[%d]@%d skipped: %s", topic, part, offset, exc)


class FatalConsumerError(KafkaException):
    """The consumer client is unusable: a new one must take its place."""


def _retriable(exc: BaseException) -> bool:
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and error.retriable()


def _is_error(msg: Message) -> bool:
    error = msg.error()
    if error is None:
        return False
    if error.code() == KafkaError._PARTITION_EOF:
        log.debug("Reached end of %s[%d]", msg.topic(), msg.partition())
    elif error.fatal() or error.code() == KafkaError._FATAL:
        # librdkafka reports a fatal error as an event with code _FATAL, not always flagged
        raise FatalConsumerError(error)
    else:
        log.warning("Consumer error: %s", error.str())
    return True
