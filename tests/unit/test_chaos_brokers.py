"""The faults `foodflow chaos --brokers 3` adds, as far as they are logic: which broker each
kills, that a killed broker is started again however the watching goes, the wait until nothing
is under-replicated, the plan, the longest stall and the verdict. Against fakes of the cluster's
nodes (a real process stands in for the broker, so the SIGKILL is real); the whole thing runs
against a real cluster in tests/e2e/cluster."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from foodflow.platform.config import Settings, get_settings
from foodflow.platform.errors import InfraError
from foodflow.platform.kafka import inspect as kafka_inspect
from foodflow.tools.chaos import brokers, checks, runner
from foodflow.tools.chaos.faults import Fault, FaultRecord
from foodflow.tools.chaos.runner import ChaosConfig, ChaosReport
from foodflow.tools.cli_errors import ExitCode
from foodflow.tools.infra import kafka, process


def test_the_leader_of_most_partitions_is_chosen_the_lowest_id_of_a_tie() -> None:
    assert brokers.most_leading({0: 2, 1: 3, 2: 2, 3: -1}) == (2, 2)
    assert brokers.most_leading({0: 3, 1: 1, 2: 3, 3: 1}) == (1, 2)
    with pytest.raises(InfraError):
        brokers.most_leading({0: -1, 1: -1})


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_in_sync_is_the_first_look_that_finds_nothing_under_replicated() -> None:
    clock = Clock()
    looks: list[Any] = [
        [("validated_orders", 1)],
        OSError("the broker asked first is the one just killed"),
        [("__consumer_offsets", 7)],
        [],
    ]

    def read() -> list[tuple[str, int]]:
        look = looks.pop(0)
        if isinstance(look, Exception):
            raise look
        return list(look)

    seconds = brokers.wait_in_sync(Settings(), 60, read=read, clock=clock, sleep=clock.sleep)
    assert seconds == pytest.approx(3 * brokers.WATCH_SECONDS)


def test_still_under_replicated_at_the_limit_is_none() -> None:
    clock = Clock()
    result = brokers.wait_in_sync(
        Settings(), 5, read=lambda: [("validated_orders", 0)], clock=clock, sleep=clock.sleep
    )
    assert result is None
    assert clock.now - 100.0 == pytest.approx(5.0)


class FakeNode:
    """A cluster node whose broker is a real process of ours (`sleep`), so that the SIGKILL
    and the wait for its end are the real ones."""

    def __init__(self, node_id: int) -> None:
        self.node_id = node_id
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.start()

    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def is_running(self) -> bool:
        return self.proc is not None and process.pid_alive(self.proc.pid)

    def start(self, timeout: float = 120.0) -> bool:
        if self.is_running():
            return False
        self.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        self.starts += 1
        return True

    def stop(self) -> bool:
        if self.proc is None:
            return False
        self.proc.kill()
        self.proc.wait()
        return True


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[int, FakeNode]]:
    nodes = {n: FakeNode(n) for n in (1, 2, 3)}
    monkeypatch.setattr(kafka, "cluster_nodes", lambda settings: list(nodes.values()))
    # Partitions 0-5: node 2 leads three, node 3 two, node 1 one; node 3 is the controller.
    leaders = {0: 2, 1: 2, 2: 3, 3: 1, 4: 2, 5: 3}
    monkeypatch.setattr(
        kafka_inspect, "partition_leaders", lambda settings, topic, timeout=10: dict(leaders)
    )
    monkeypatch.setattr(kafka_inspect, "active_controller", lambda settings: 3)
    monkeypatch.setattr(brokers, "WATCH_SECONDS", 0.01)
    yield nodes
    for node in nodes.values():
        node.stop()


@pytest.mark.parametrize(
    ("kind", "given", "killed"),
    [("kill_broker", 1, 1), ("kill_leader", 0, 2), ("kill_controller", 0, 3)],
)
def test_each_broker_fault_kills_its_broker_and_starts_it_again(
    cluster: dict[int, FakeNode], kind: str, given: int, killed: int
) -> None:
    before = {n: node.pid() for n, node in cluster.items()}
    kill = brokers.kill_and_restart(Settings(), kind, given, downtime=0.2)
    assert kill.node_id == killed
    assert kill.back >= 0.2
    assert kill.started_by_us
    for n, node in cluster.items():
        assert node.is_running()
        # Only the chosen one was killed, and started again once.
        assert (node.pid() != before[n]) == (n == killed)
        assert node.starts == (2 if n == killed else 1)
    # The fakes' leaders never move: said so, not made up.
    assert kill.leaders_moved is None
    assert "led by it or by nobody" in kill.describe(1.0)


def test_a_killed_broker_is_started_again_when_watching_fails(
    cluster: dict[int, FakeNode], monkeypatch: pytest.MonkeyPatch
) -> None:
    def lost(settings: Settings, topic: str, timeout: float = 10) -> dict[int, int]:
        raise KeyboardInterrupt  # the run interrupted while the broker is down

    brokers.choose(Settings(), "kill_leader", 0)  # chosen before the leaders become unreadable
    monkeypatch.setattr(brokers, "choose", lambda settings, kind, node: (2, "test"))
    monkeypatch.setattr(kafka_inspect, "partition_leaders", lost)
    with pytest.raises(KeyboardInterrupt):
        brokers.kill_and_restart(Settings(), "kill_leader", 0, downtime=5)
    assert cluster[2].is_running() and cluster[2].starts == 2


def test_watching_sees_leaders_move_and_a_new_controller(
    cluster: dict[int, FakeNode], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Node 3 still leads one, then none has a leader yet, then both are led elsewhere.
    looks = iter([{0: 3, 1: 2}, {0: -1, 1: 2}, {0: 1, 1: 2}])
    monkeypatch.setattr(
        kafka_inspect,
        "partition_leaders",
        lambda settings, topic, timeout=10: next(looks, {0: 1, 1: 2}),
    )
    # The first answer chooses the node; then none while the quorum votes, then the old one
    # (a stale answer), then the new one.
    controllers = iter([3, None, 3, 1])
    monkeypatch.setattr(kafka_inspect, "active_controller", lambda settings: next(controllers, 1))
    kill = brokers.kill_and_restart(Settings(), "kill_controller", 0, downtime=0.3)
    assert kill.node_id == 3
    assert kill.leaders_moved is not None and kill.leaders_moved < 0.3
    assert kill.new_controller is not None and kill.new_controller[0] == 1
    assert "node 1 the active controller" in kill.describe(2.5)


def test_a_node_that_is_not_running_is_not_killed(cluster: dict[int, FakeNode]) -> None:
    cluster[1].stop()
    with pytest.raises(InfraError, match="not running"):
        brokers.kill_and_restart(Settings(), "kill_broker", 1, downtime=0)
    assert cluster[1].starts == 1  # not started either: the fault refuses, it does not repair


def test_a_single_node_is_no_cluster_and_a_node_down_is_unavailable(
    cluster: dict[int, FakeNode], monkeypatch: pytest.MonkeyPatch
) -> None:
    one = [cluster[1]]
    monkeypatch.setattr(kafka, "cluster_nodes", lambda settings: one)
    problem = brokers.cluster_problem(Settings(), 3)
    assert problem is not None and problem[0] == ExitCode.USAGE
    assert "not a 3-node cluster" in problem[1] and "--brokers 3" in problem[1]
    monkeypatch.setattr(kafka, "cluster_nodes", lambda settings: list(cluster.values()))
    cluster[2].stop()
    problem = brokers.cluster_problem(Settings(), 3)
    assert problem == (
        ExitCode.UNAVAILABLE,
        "Kafka node(s) 2 of 3 not running (`foodflow up` starts them)",
    )


def test_a_cluster_run_plans_each_broker_fault_and_one_of_three_order_managers() -> None:
    cfg = ChaosConfig(
        kills_per_service=0,
        restart_infra=False,
        flushall=False,
        poison=(),
        order_managers=3,
        brokers=3,
        broker_downtime=12,
    )
    planned = runner.plan_faults(cfg, 100.0, random.Random(3))
    kinds = [f.kind for f in planned]
    assert sorted(kinds) == sorted(["kill_one_of", *brokers.BROKER_FAULTS])
    kill = next(f for f in planned if f.kind == "kill_one_of")
    assert (kill.of, kill.target) == (3, "order_manager") and 0 <= kill.instance < 3
    assert kill.describe() == f"SIGKILL order_manager-{kill.instance} of 3"
    at_random = next(f for f in planned if f.kind == "kill_broker")
    assert 1 <= at_random.instance <= 3
    assert all(f.seconds == 12 for f in planned if f.kind in brokers.BROKER_FAULTS)
    # Broker faults are instant faults: stalls count from the kill, not from the restart.
    record = FaultRecord(at_random, 100.0, 140.0, in_sync_seconds=2.0)
    assert record.is_broker_fault and not record.takes_a_dependency_away
    assert record.stall_from == 100.0


def test_the_longest_stall_of_a_run_and_the_fault_before_it() -> None:
    segments = [
        checks.Window(10, 12),  # before any fault
        checks.Window(100, 111),  # a broker killed at 100: 11 s
        checks.Window(150, 190),  # a restart of Redis from 140 to 185: 5 s remain
    ]
    moments = [185.0, 100.0]  # the restart's end, the kill (in the order the faults ran)
    away = [checks.Window(140, 185)]
    assert checks.longest_stall(segments, moments, away) == (11, 1)
    assert checks.longest_stall(segments[:1], moments, away) == (2, None)
    assert checks.longest_stall([], moments, away) is None


def report(**fields: Any) -> ChaosReport:
    base = ChaosReport(
        sent=10,
        invalid_sent=0,
        outcomes={"CONFIRMED": 10},
        lost=[],
        duplicated=[],
        stuck=[],
        inconsistent=[],
        invalid_not_failed=[],
        stock_drift={},
        dead_letters=0,
        faults=[],
        recover_seconds=1.0,
        duration_seconds=10.0,
    )
    for name, value in fields.items():
        setattr(base, name, value)
    return base


def test_the_longest_stall_and_the_replication_decide_the_verdict() -> None:
    assert report(longest_stall=15.0, in_sync=[("#1", 59.0)]).passed
    assert not report(longest_stall=15.1).passed
    assert not report(in_sync=[("#1", None)]).passed
    assert not report(in_sync=[("#1", 2.0), ("#2", 61.0)]).passed


def test_broker_faults_describe_themselves() -> None:
    assert Fault(1, "kill_broker", "kafka", 20, instance=2).describe() == (
        "SIGKILL Kafka broker 2, back after 20s"
    )
    assert "validated_orders" in Fault(1, "kill_leader", "kafka", 20).describe()
    assert "controller" in Fault(1, "kill_controller", "kafka", 20).describe()


def test_the_command_refuses_brokers_on_a_single_node_before_anything_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No server at all: the refusal comes first, from what foodflow started (one node in a
    state directory that records no cluster), and says how to start a cluster."""
    from foodflow.tools.chaos.command import chaos

    monkeypatch.setenv("FOODFLOW_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("KAFKA_BROKERS", raising=False)
    get_settings.cache_clear()
    app = typer.Typer()
    app.command()(chaos)
    try:
        done = CliRunner().invoke(app, ["--brokers", "3"], env={"COLUMNS": "200"})
    finally:
        get_settings.cache_clear()
    assert done.exit_code == ExitCode.USAGE, done.output
    assert "not a 3-node cluster" in done.output
    assert "foodflow up --brokers 3" in done.output
    assert CliRunner().invoke(app, ["--brokers", "2"]).exit_code == ExitCode.USAGE  # min 3
