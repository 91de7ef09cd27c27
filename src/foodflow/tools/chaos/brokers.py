"""The faults of a Kafka cluster (`foodflow chaos --brokers N`): SIGKILL of a broker, then its
start again after a downtime, and the wait until no partition is under-replicated.

Three ways to choose the broker: one at random (when the run is planned, so `--seed` repeats
it), the one that leads the most `validated_orders` partitions, and the active KRaft controller
(both found when the fault starts, since leadership moves as brokers come and go). Every node of
a foodflow cluster is a combined controller and broker (docs/operations.md), so each kill also
takes a voter away from the controller quorum; killing the active controller makes the quorum
elect another.

While the broker is down, the fault watches what the cluster does about it: how long until no
`validated_orders` partition is led by it (or by nobody), and after the controller's kill, how
long until another node leads the quorum. Those figures go into the fault's record as its
detail; what the orders saw (their stalls) is what the run checks.

Only a node foodflow started is killed, by the pid in its pidfile (`KafkaNode.pid`).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from foodflow.contracts import topics
from foodflow.platform.config import Settings
from foodflow.platform.errors import InfraError
from foodflow.platform.kafka import inspect as kafka_inspect
from foodflow.tools.cli_errors import QUIET, ExitCode
from foodflow.tools.infra import kafka, process

BROKER_FAULTS = ("kill_broker", "kill_leader", "kill_controller")
# How long a broker stays down by default: well past the controller's fencing of a broker that
# stopped heartbeating (`broker.session.timeout.ms`, 9 s), so that leaders move and replica
# sets shrink, and the broker has a backlog to catch up with when it is back.
DOWNTIME_SECONDS = 20.0
# The bound: nothing under-replicated this long after the broker is back.
IN_SYNC_WITHIN_SECONDS = 60.0
# How often the cluster is looked at while a broker is down or catching up.
WATCH_SECONDS = 0.5
# A killed broker's start: its JVM, its log recovery and catching up with the quorum take
# minutes on a loaded machine (over 2 min seen at a load of 35 on 2 cores).
READY_TIMEOUT_SECONDS = 300.0
# Any one look at the cluster gives up after this long (a broker just killed may be the one
# the admin client asks first).
LOOK_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class BrokerKill:
    """What a broker fault did: which node and why, and how the cluster answered (seconds
    after the kill)."""

    node_id: int
    why: str
    leaders_moved: float | None  # no validated_orders partition led by it, nor leaderless
    new_controller: tuple[int, float] | None  # (node, seconds): another node leads the quorum
    back: float  # it was started again and answers
    started_by_us: bool = True

    def describe(self, in_sync: float | None) -> str:
        parts = [f"broker {self.node_id}: {self.why}"]
        parts.append(
            "its partitions still led by it or by nobody when it came back"
            if self.leaders_moved is None
            else f"its {topics.VALIDATED_ORDERS} partitions led elsewhere after"
            f" {self.leaders_moved:.1f}s"
        )
        if self.new_controller is not None:
            node, seconds = self.new_controller
            parts.append(f"node {node} the active controller after {seconds:.1f}s")
        parts.append(f"back after {self.back:.1f}s")
        if not self.started_by_us:
            parts.append("already running again: something else started it")
        parts.append(
            "partitions still under-replicated at the limit"
            if in_sync is None
            else f"every partition in sync {in_sync:.1f}s later"
        )
        return "; ".join(parts)


def most_leading(leaders: Mapping[int, int]) -> tuple[int, int]:
    """The node leading the most partitions (the lowest id of a tie) and how many it leads,
    from partition → leader (-1: none)."""
    counts = Counter(node for node in leaders.values() if node >= 0)
    if not counts:
        raise InfraError("kafka", f"no {topics.VALIDATED_ORDERS} partition has a leader", "")
    node, led = min(counts.items(), key=lambda item: (-item[1], item[0]))
    return node, led


def choose(settings: Settings, kind: str, node_id: int) -> tuple[int, str]:
    """The node a broker fault kills, and why that one."""
    if kind == "kill_broker":
        return node_id, "chosen at random"
    if kind == "kill_leader":
        leaders = kafka_inspect.partition_leaders(settings, topics.VALIDATED_ORDERS)
        node, led = most_leading(leaders)
        return node, f"leader of {led} of {len(leaders)} {topics.VALIDATED_ORDERS} partitions"
    if kind == "kill_controller":
        controller = kafka_inspect.active_controller(settings)
        if controller is None:
            raise InfraError("kafka", "no active KRaft controller to kill", "")
        return controller, "the active controller"
    raise ValueError(f"unknown broker fault {kind!r}; one of {BROKER_FAULTS}")


class Watch:
    """What the cluster did about a killed node, looked at again and again while it is down."""

    def __init__(self, settings: Settings, node_id: int, killed: float, controller: bool):
        self.settings = settings
        self.node_id = node_id
        self.killed = killed
        self.controller = controller
        self.leaders_moved: float | None = None
        self.new_controller: tuple[int, float] | None = None

    def look(self) -> None:
        # A look may fail while the cluster reorganises: the next one tells.
        try:
            if self.leaders_moved is None:
                leaders = kafka_inspect.partition_leaders(
                    self.settings, topics.VALIDATED_ORDERS, LOOK_TIMEOUT_SECONDS
                )
                if leaders and all(node not in (self.node_id, -1) for node in leaders.values()):
                    self.leaders_moved = time.monotonic() - self.killed
            if self.controller and self.new_controller is None:
                node = kafka_inspect.active_controller(self.settings)
                if node is not None and node != self.node_id:
                    self.new_controller = (node, time.monotonic() - self.killed)
        except (KafkaException, InfraError, OSError, TimeoutError):
            pass


def kill_and_restart(settings: Settings, kind: str, node_id: int, downtime: float) -> BrokerKill:
    """SIGKILL the node `kind` chooses (`node_id` for "kill_broker"), watch the cluster for
    `downtime` seconds, then start the node again with its data and wait until it answers.
    The node is started again however the watching goes."""
    chosen, why = choose(settings, kind, node_id)
    nodes = {node.node_id: node for node in kafka.cluster_nodes(settings)}
    if chosen not in nodes:
        raise InfraError("kafka", f"node {chosen} is not a node foodflow started", "")
    node = nodes[chosen]
    pid = node.pid()
    if pid is None or not process.pid_alive(pid):
        raise InfraError(f"kafka node {chosen}", "not running: nothing to kill", "")
    os.kill(pid, signal.SIGKILL)
    while process.pid_alive(pid):
        time.sleep(0.02)
    killed = time.monotonic()
    watch = Watch(settings, chosen, killed, controller=kind == "kill_controller")
    try:
        while time.monotonic() < killed + downtime:
            watch.look()
            time.sleep(max(0.0, min(WATCH_SECONDS, killed + downtime - time.monotonic())))
    finally:
        started = node.start(timeout=READY_TIMEOUT_SECONDS)
    return BrokerKill(
        chosen,
        why,
        watch.leaders_moved,
        watch.new_controller,
        time.monotonic() - killed,
        started_by_us=started,
    )


def wait_in_sync(
    settings: Settings,
    within: float,
    *,
    read: Callable[[], list[tuple[str, int]]] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float | None:
    """Seconds until no partition is under-replicated, looking every `WATCH_SECONDS`; None
    when some still were after `within` seconds (a look that fails counts as not yet)."""
    under_replicated = read or (
        lambda: kafka_inspect.under_replicated(settings, LOOK_TIMEOUT_SECONDS)
    )
    began = clock()
    while True:
        try:
            if under_replicated() == []:
                return clock() - began
        except (KafkaException, InfraError, OSError, TimeoutError):
            pass
        if clock() - began >= within:
            return None
        sleep(WATCH_SECONDS)


def cluster_problem(settings: Settings, brokers: int) -> tuple[ExitCode, str] | None:
    """Why the running Kafka is not the `brokers`-node cluster a broker fault needs (and the
    exit code to say it with), or None when it is: as many nodes foodflow started, each
    running, each registered with the cluster."""
    nodes = kafka.cluster_nodes(settings)
    if len(nodes) != brokers:
        return (
            ExitCode.USAGE,
            f"--brokers {brokers}: Kafka runs as {len(nodes)} node(s) at"
            f" {settings.kafka_bootstrap}, not a {brokers}-node cluster"
            f" (start one: `foodflow down`, then `foodflow up --brokers {brokers}`)",
        )
    down = [node.node_id for node in nodes if not node.is_running()]
    if down:
        return (
            ExitCode.UNAVAILABLE,
            f"Kafka node(s) {', '.join(map(str, down))} of {brokers} not running"
            " (`foodflow up` starts them)",
        )
    config: dict[str, Any] = {"bootstrap.servers": settings.kafka_bootstrap, "logger": QUIET}
    client = AdminClient(config)
    try:
        registered = len(client.list_topics(timeout=LOOK_TIMEOUT_SECONDS).brokers)
    except KafkaException as exc:
        return ExitCode.UNAVAILABLE, f"Kafka at {settings.kafka_bootstrap} does not answer: {exc}"
    if registered != brokers:
        return (
            ExitCode.UNAVAILABLE,
            f"only {registered} of {brokers} Kafka brokers are registered with the cluster"
            " (one is starting or was fenced: try again shortly)",
        )
    return None
