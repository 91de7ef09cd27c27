"""An idempotent Kafka producer whose `publish` awaits the broker's acknowledgement.

A plain `confluent_kafka.Producer` does the work: `produce()` only appends to librdkafka's
in-memory queue (non-blocking), and one background thread calls `poll()` to serve delivery
reports, which it hands to the event loop with `call_soon_threadsafe`. This is simpler and
faster than `confluent_kafka.aio.AIOProducer`, which adds a second buffering layer and a thread
pool hop per call on top of librdkafka's own batching.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from pydantic import BaseModel

from foodflow.platform.config import Settings
from foodflow.platform.errors import PublishError
from foodflow.platform.kafka._logging import librdkafka_logger

log = logging.getLogger(__name__)

# How long `publish` waits for room when librdkafka's local queue is full before giving up.
QUEUE_FULL_WAIT_SECONDS = 30.0

# Errors that name the message itself, not the broker's state: publishing it again cannot help.
MESSAGE_FAULTS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_RECORD,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError._INVALID_ARG,
        KafkaError._BAD_MSG,
    }
)


def refuses_message(error: object) -> bool:
    """True when `error` (a KafkaError, or anything else) says the message itself is refused."""
    return isinstance(error, KafkaError) and error.code() in MESSAGE_FAULTS


def encode_value(value: BaseModel | bytes) -> bytes:
    if isinstance(value, BaseModel):
        return value.model_dump_json().encode()
    return bytes(value)


class EventProducer:
    """Long-lived idempotent producer (acks=all, lz4, linger 5 ms).

    Use `async with EventProducer(settings) as producer:` or `start()`/`stop()`; `stop()` flushes
    what is queued and is harmless to call twice.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        client_id: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self._config: dict[str, Any] = {
            "bootstrap.servers": settings.kafka_bootstrap,
            "client.id": client_id or f"foodflow-producer-{os.getpid()}",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            # A bounded wait for the delivery report: long enough to ride out a broker restart.
            "delivery.timeout.ms": 120_000,
            "logger": librdkafka_logger(),
        }
        self._config.update(config or {})
        self._producer: Producer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poller: threading.Thread | None = None
        self._stopping = threading.Event()
        # Delivery reports from librdkafka's thread, settled on the loop in bursts.
        self._delivered: deque[tuple[asyncio.Future[None], KafkaError | None, Message]] = deque()
        self._wake_pending = False

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
    def started(self) -> bool:
        return self._producer is not None

    async def start(self) -> None:
        """Create the client and its poll thread."""
        if self._producer is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._stopping.clear()
        self._producer = Producer(self._config)
        self._poller = threading.Thread(
            target=self._poll_forever, name="kafka-producer-poll", daemon=True
        )
        self._poller.start()

    async def stop(self, timeout: float = 10.0) -> None:
        """Flush queued messages (up to `timeout` seconds), then stop the poll thread."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        remaining = await asyncio.to_thread(producer.flush, timeout)
        if remaining:
            log.warning("Producer stopped with %d message(s) undelivered", remaining)
        self._stopping.set()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join)
            self._poller = None

    def _wake_loop(self) -> None:
        """One hop to the event loop per burst of delivery reports, not one per message."""
        if self._wake_pending:
            return
        self._wake_pending = True
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # loop closed: nobody is waiting any more
                loop.call_soon_threadsafe(self._settle_delivered)

    def _settle_delivered(self) -> None:
        self._wake_pending = False  # before draining: a report appended from now on wakes again
        while self._delivered:
            _settle(*self._delivered.popleft())

    def _poll_forever(self) -> None:
        producer = self._producer
        assert producer is not None
        while not self._stopping.is_set():
            producer.poll(0.1)

    def _require(self) -> Producer:
        if self._producer is None:
            raise PublishError("producer is not started")
        return self._producer

    def publish_nowait(
        self, topic: str, value: BaseModel | bytes, key: str | None = None
    ) -> asyncio.Future[None]:
        """Queue one message; the returned future resolves on the broker's acknowledgement.

        Raises PublishError at once if the local queue is full or the client refuses the
        message; the future fails with PublishError if the broker does not take it.
        """
        producer = self._require()
        loop = self._loop
        assert loop is not None
        future: asyncio.Future[None] = loop.create_future()

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            # Runs on the poll thread (or whichever thread flushes): hand over to the loop.
            self._delivered.append((future, err, msg))
            self._wake_loop()

        try:
            producer.produce(
                topic,
                value=encode_value(value),
                key=key.encode() if key is not None else None,
                on_delivery=on_delivery,
            )
        except BufferError as exc:
            raise PublishError(f"local producer queue is full ({topic})") from exc
        except KafkaException as exc:
            raise PublishError(
                f"producing to {topic} failed: {exc}", refused=refuses_message(exc.args[0])
            ) from exc
        return future

    async def publish(self, topic: str, value: BaseModel | bytes, key: str | None = None) -> None:
        """Send one message and wait until the broker has acknowledged it (acks=all).

        Raises PublishError if it could not be delivered.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + QUEUE_FULL_WAIT_SECONDS
        while True:
            try:
                future = self.publish_nowait(topic, value, key)
                break
            except PublishError as exc:
                # Back-pressure: the queue drains as the poll thread serves deliveries.
                if not isinstance(exc.__cause__, BufferError) or loop.time() > deadline:
                    raise
                await asyncio.sleep(0.01)
        await future

    async def publish_all(
        self, messages: Sequence[tuple[str, BaseModel | bytes]], key: str | None = None
    ) -> None:
        """Send several messages (topic, value) with one key; return once all are acknowledged.

        Cheaper than gathering `publish` calls (no task per message); a full local queue falls
        back to `publish`, which waits for room.
        """
        pending = []
        for topic, value in messages:
            try:
                pending.append(self.publish_nowait(topic, value, key))
            except PublishError as exc:
                if not isinstance(exc.__cause__, BufferError):
                    raise
                await self.publish(topic, value, key)
        await asyncio.gather(*pending)  # futures, not coroutines: no task is made for them

    async def flush(self, timeout: float = 10.0) -> int:
        """Wait until queued messages are delivered; returns how many are still queued."""
        producer = self._require()
        remaining: int = await asyncio.to_thread(producer.flush, timeout)
        return remaining


def _settle(future: asyncio.Future[None], err: KafkaError | None, msg: Message) -> None:
    if future.done():  # cancelled by the caller
        return
    if err is not None:
        future.set_exception(
            PublishError(
                f"delivery to {msg.topic()} failed: {err.str()} ({err.name()})",
                refused=refuses_message(err),
            )
        )
    else:
        future.set_result(None)
