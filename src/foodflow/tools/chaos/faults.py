"""The faults chaos injects, and the record of each as it happened.

SIGKILL of a service (alone, or one of several instances), a restart, FLUSHALL or a timed outage
of Redis, PostgreSQL or Kafka, a timed outage of a service the order manager calls, poison
messages on `validated_orders`, and on a Kafka cluster SIGKILL of one broker
(`foodflow.tools.chaos.brokers`). Faults run one at a time (an outage of a service and a
SIGKILL of it never overlap), and each is logged with its wall-clock start and end, which the
checks compare with the orders' times.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
import redis
from confluent_kafka import Message

from foodflow.contracts import topics
from foodflow.platform.config import Settings
from foodflow.platform.errors import PublishError
from foodflow.tools import processes, restore
from foodflow.tools.chaos import brokers
from foodflow.tools.chaos.brokers import BROKER_FAULTS
from foodflow.tools.infra import manager, process
from foodflow.tools.kafka_io import tool_producer

# librdkafka reports every refused reconnect while a broker restarts; chaos causes those on
# purpose and reports delivery failures itself, so its clients' own logs stay quiet.
QUIET_KAFKA_LOG = logging.getLogger("foodflow.tools.chaos.librdkafka")
QUIET_KAFKA_LOG.setLevel(logging.CRITICAL)

READY_TIMEOUT_SECONDS = 90.0

# Dependencies an outage can take away: services the order manager calls, and servers.
OUTAGE_SERVICES = ("inventory_service", "pricing_service", "payment_service")
OUTAGE_SERVERS = ("postgres", "redis")
OUTAGE_TARGETS = OUTAGE_SERVICES + OUTAGE_SERVERS

# The broker refuses a record batch over its `message.max.bytes` (Kafka's default, 1,048,588
# bytes, which is also each topic's `max.message.bytes`); one message travels in a batch of
# its own with ~70 bytes of framing. The "1 MB" poison is 1 KiB under a MiB: as large as the
# broker accepts with room to spare. The tool's producer must allow it (librdkafka's own
# default limit is 1,000,000 bytes).
BROKER_MESSAGE_LIMIT = 1_048_588
BIG_POISON_BYTES = 1_048_576 - 1024
NUL_POISON_BYTES = 150_000
MANY_ITEMS = 10_000
# Poison kinds: a ~1 MB JSON order; an order whose user_id holds NUL (valid JSON, text
# PostgreSQL cannot store); 150 KB of raw NUL bytes; an order of 10,000 items.
POISON_KINDS = ("big", "nul-user", "nuls", "many-items")


@dataclass(frozen=True)
class Fault:
    at: float  # earliest start, seconds after the start of the run
    # "kill", "kill_one_of", "restart", "flushall", "outage", "poison", or a broker fault:
    # "kill_broker", "kill_leader", "kill_controller" (`brokers.BROKER_FAULTS`)
    kind: str
    target: str  # a service or server name, or poison kinds joined by ","
    seconds: float = 0.0  # how long an outage keeps its target down, or a broker its downtime
    instance: int = 0  # which instance a kill hits (a broker: its node id)
    of: int = 1  # how many instances run when `kill_one_of` kills one

    def describe(self) -> str:
        match self.kind:
            case "kill":
                return f"SIGKILL {self.target}"
            case "kill_one_of":
                return f"SIGKILL {self.target}-{self.instance} of {self.of}"
            case "kill_broker":
                return f"SIGKILL Kafka broker {self.instance}, back after {self.seconds:g}s"
            case "kill_leader":
                return (
                    f"SIGKILL the broker leading most {topics.VALIDATED_ORDERS} partitions,"
                    f" back after {self.seconds:g}s"
                )
            case "kill_controller":
                return f"SIGKILL the active KRaft controller, back after {self.seconds:g}s"
            case "outage":
                return f"{self.seconds:g}s outage of {self.target}"
            case "flushall":
                return "Redis FLUSHALL"
            case "poison":
                return f"{len(self.target.split(','))} poison messages"
            case _:
                return f"restart {self.target}"


@dataclass(frozen=True)
class FaultRecord:
    """A fault as it happened: wall-clock seconds (epoch) when it began and ended."""

    fault: Fault
    started: float
    ended: float
    detail: str = ""
    # Where each poison message landed, (topic, partition, offset), and its order id if any.
    poisoned: tuple[tuple[tuple[str, int, int], str | None], ...] = ()
    # A broker fault: seconds from the broker being back until no partition was
    # under-replicated; None when that did not happen within the limit.
    in_sync_seconds: float | None = None
    # A broker fault: seconds from the kill until no validated_orders partition was led by the
    # broker or by nobody (None: not before it came back).
    leaders_moved_seconds: float | None = None

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def is_broker_fault(self) -> bool:
        return self.fault.kind in BROKER_FAULTS

    @property
    def takes_a_dependency_away(self) -> bool:
        """An outage or a restart: orders may rightly wait while it lasts. Not a broker of a
        cluster: the other two keep serving (replication factor 3, `min.insync.replicas` 2), so
        a broker fault is the system's to ride through, measured from its kill."""
        return self.fault.kind in ("outage", "restart")

    @property
    def stall_from(self) -> float:
        """When the system is expected to move again: the moment of an instant fault (a kill
        or a flush is the system's to recover from), the end of an outage or a restart (while
        a dependency is away, waiting is right)."""
        return self.ended if self.takes_a_dependency_away else self.started


@dataclass
class PoisonMessage:
    value: bytes
    order_id: str | None = None


def poison_message(kind: str, item_id: str, tag: str) -> PoisonMessage:
    """The bytes of one poison message of `kind` (see POISON_KINDS)."""
    if kind == "nuls":
        return PoisonMessage(b"\x00" * NUL_POISON_BYTES)
    if kind == "nul-user":
        order_id = str(uuid.uuid4())
        body = {
            "order_id": order_id,
            "user_id": "chaos\x00poison",
            "items": [{"item_id": item_id, "quantity": 1}],
        }
        return PoisonMessage(orjson.dumps(body), order_id)
    if kind == "many-items":
        items = [{"item_id": f"chaos-{tag}-x{n}", "quantity": 1} for n in range(MANY_ITEMS)]
        return PoisonMessage(orjson.dumps({"user_id": "chaos-poison", "items": items}))
    if kind == "big":
        head = orjson.dumps(
            {"user_id": "chaos-poison", "items": [{"item_id": item_id, "quantity": 1}]}
        )
        pad = BIG_POISON_BYTES - len(head) - len(b',"note":""')
        return PoisonMessage(head[:-1] + b',"note":"' + b"x" * pad + b'"}')
    raise ValueError(f"unknown poison kind {kind!r}; one of {POISON_KINDS}")


def publish_poison(settings: Settings, message: PoisonMessage) -> tuple[str, int, int]:
    """Publish raw bytes on `validated_orders` and wait for the ack; its coordinates."""
    where: list[tuple[str, int, int]] = []
    errors: list[str] = []

    def delivered(err: object, msg: Message) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            where.append((msg.topic() or "", msg.partition() or 0, msg.offset() or 0))

    producer = tool_producer(settings, {"message.max.bytes": BROKER_MESSAGE_LIMIT, "linger.ms": 0})
    producer.produce(
        topics.VALIDATED_ORDERS, value=message.value, key=message.order_id, on_delivery=delivered
    )
    producer.flush(60)
    if errors or not where:
        raise PublishError(errors[0] if errors else "poison message not acknowledged")
    return where[0]


def service(
    settings: Settings,
    name: str,
    env: dict[str, str] | None,
    before: Mapping[str, restore.Started] | None,
    instance: int = 0,
) -> processes.ServiceProcess:
    """One instance, which chaos (re)starts from the environment it ran with before the run
    (`before`), `env` over it: chaos leaves the services' settings as it found them, whatever
    the environment of the shell chaos runs in."""
    base = restore.base_environ(before or {}, name, instance) or None
    return processes.ServiceProcess(name, settings, env, instance, base_env=base)


def kill_service(
    settings: Settings,
    name: str,
    env: dict[str, str] | None,
    instance: int = 0,
    before: Mapping[str, restore.Started] | None = None,
) -> str:
    """SIGKILL one instance (no chance to clean up), then wait until its supervisor has
    restarted it and it is ready (started here only if it runs unsupervised). Returns who
    restarted it."""
    svc = service(settings, name, env, before, instance)
    pid = process.read_pid(svc.pidfile)
    if process.pid_alive(pid):
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        while process.pid_alive(pid):
            time.sleep(0.02)
    if svc.supervised():
        svc.await_restart(pid, timeout=READY_TIMEOUT_SECONDS)
        return "restarted by its supervisor"
    svc.start(timeout=READY_TIMEOUT_SECONDS)
    return "restarted by chaos"


def _server(settings: Settings, name: str) -> manager.Server:
    return next(s for s in manager.servers(settings) if s.name == name)


def restart_server(settings: Settings, name: str) -> None:
    """A clean stop and start of one infrastructure server."""
    server = _server(settings, name)
    server.stop()
    server.start()


def flush_redis(settings: Settings) -> str:
    """FLUSHALL: every key of every database gone, as a lost or replaced cache would be."""
    client = redis.Redis(host=settings.redis_host, port=settings.redis_port, socket_timeout=10)
    try:
        keys = client.dbsize()
        client.flushall()
    finally:
        client.close()
    return f"{keys} keys flushed"


def outage(
    settings: Settings,
    target: str,
    seconds: float,
    env: dict[str, str] | None,
    before: Mapping[str, restore.Started] | None = None,
) -> str:
    """Stop `target`, keep it away until `seconds` after the stop began (a draining service
    takes a while to go), then start it and wait until it is ready.

    Returns a note if something started it again before its time (a supervisor must not
    restart a service that was stopped on purpose)."""
    began = time.monotonic()
    if target in OUTAGE_SERVERS:
        server = _server(settings, target)
        server.stop()
        time.sleep(max(0.0, began + seconds - time.monotonic()))
        early = server.is_running()
        server.start()
    elif target in OUTAGE_SERVICES:
        svc = service(settings, target, env, before)
        svc.stop()
        time.sleep(max(0.0, began + seconds - time.monotonic()))
        early = svc.is_running()
        svc.start(timeout=READY_TIMEOUT_SECONDS)
    else:
        raise ValueError(f"no outage of {target!r}; one of {OUTAGE_TARGETS}")
    return "came back before its time: something restarted it" if early else ""


def apply(
    settings: Settings,
    fault: Fault,
    env: dict[str, str] | None,
    poison_item: str,
    tag: str,
    before: Mapping[str, restore.Started] | None = None,
    in_sync_within: float = brokers.IN_SYNC_WITHIN_SECONDS,
) -> FaultRecord:
    """Inject one fault and return its record (blocking: run it in a thread). A service chaos
    starts again starts from its environment in `before` (see `service`); a broker fault
    waits up to `in_sync_within` seconds after the broker is back for every partition to be
    fully replicated again."""
    started = time.time()
    detail = ""
    if fault.kind in BROKER_FAULTS:
        kill = brokers.kill_and_restart(settings, fault.kind, fault.instance, fault.seconds)
        in_sync = brokers.wait_in_sync(settings, in_sync_within)
        return FaultRecord(
            fault, started, time.time(), kill.describe(in_sync), (), in_sync, kill.leaders_moved
        )
    if fault.kind in ("kill", "kill_one_of"):
        detail = kill_service(settings, fault.target, env, fault.instance, before)
    elif fault.kind == "restart":
        restart_server(settings, fault.target)
    elif fault.kind == "flushall":
        detail = flush_redis(settings)
    elif fault.kind == "outage":
        detail = outage(settings, fault.target, fault.seconds, env, before)
    elif fault.kind == "poison":
        messages = [poison_message(kind, poison_item, tag) for kind in fault.target.split(",")]
        poisoned = tuple((publish_poison(settings, m), m.order_id) for m in messages)
        sizes = ", ".join(
            f"{kind} {len(m.value):,} B at {p}@{o}"
            for kind, m, ((_, p, o), _) in zip(
                fault.target.split(","), messages, poisoned, strict=True
            )
        )
        return FaultRecord(fault, started, time.time(), sizes, poisoned)
    else:
        raise ValueError(f"unknown fault kind {fault.kind!r}")
    return FaultRecord(fault, started, time.time(), detail)
