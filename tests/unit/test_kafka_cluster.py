"""A replicated Kafka cluster as `foodflow infra up --brokers 3` describes it: the settings, each
node's server.properties, the broker count recorded in the state directory, and the active
controller read from the nodes' quorum-state files. No server: files in a temporary folder."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from foodflow.platform.config import Settings
from foodflow.platform.errors import InfraError
from foodflow.platform.kafka.inspect import active_controller
from foodflow.tools import cli_errors
from foodflow.tools.infra import kafka
from foodflow.tools.infra.kafka import KafkaNode, cluster_nodes, render_server_properties
from foodflow.tools.kafka_status import partition_ranges


def _props(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


@pytest.fixture(autouse=True)
def _no_exported_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults under test, whatever the shell running the tests exported."""
    for name in (
        "KAFKA_BROKERS",
        "KAFKA_BOOTSTRAP_SERVERS",
        "FOODFLOW_TOPIC_PARTITIONS",
        "KAFKA_HEAP",
    ):
        monkeypatch.delenv(name, raising=False)


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(
        FOODFLOW_STATE_DIR=tmp_path,
        KAFKA_PORT=29092,
        KAFKA_CONTROLLER_PORT=29093,
        **values,
    )


def test_one_broker_is_the_default_with_its_old_topics(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert settings.kafka_brokers == 1
    assert settings.kafka_bootstrap == "127.0.0.1:29092"
    assert (settings.kafka_replication_factor, settings.kafka_min_insync_replicas) == (1, 1)
    assert settings.topic_partitions == 3
    assert settings.kafka_heap == "768m"
    assert settings.kafka_node_home(1) == tmp_path / "kafka"


def test_a_cluster_lists_every_broker_and_replicates_topics_three_times(tmp_path: Path) -> None:
    settings = _settings(tmp_path, KAFKA_BROKERS=3)
    assert settings.kafka_bootstrap == "127.0.0.1:29092,127.0.0.1:29102,127.0.0.1:29112"
    assert [settings.kafka_node_ports(n) for n in (1, 2, 3)] == [
        (29092, 29093),
        (29102, 29103),
        (29112, 29113),
    ]
    assert (settings.kafka_replication_factor, settings.kafka_min_insync_replicas) == (3, 2)
    assert settings.topic_partitions == 12
    assert settings.kafka_heap == "512m"  # three JVMs share the machine
    assert settings.kafka_node_home(2) == tmp_path / "kafka-cluster" / "node-2"


def test_explicit_partitions_and_heap_win_over_the_cluster_defaults(tmp_path: Path) -> None:
    settings = _settings(tmp_path, KAFKA_BROKERS=3, FOODFLOW_TOPIC_PARTITIONS=6, KAFKA_HEAP="1g")
    assert (settings.topic_partitions, settings.kafka_heap) == (6, "1g")


def test_an_even_broker_count_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="even number of KRaft voters"):
        _settings(tmp_path, KAFKA_BROKERS=2)


def test_the_bootstrap_override_replaces_the_derived_list(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path, KAFKA_BROKERS=3, KAFKA_BOOTSTRAP_SERVERS="kafka-1:9092,kafka-2:9092"
    )
    assert settings.kafka_bootstrap == "kafka-1:9092,kafka-2:9092"


def test_a_recorded_cluster_is_what_a_plain_command_uses(tmp_path: Path) -> None:
    kafka.record_brokers(_settings(tmp_path, KAFKA_BROKERS=3))
    plain = _settings(tmp_path)
    assert plain.kafka_brokers == 3 and not plain.kafka_brokers_explicit
    assert plain.topic_partitions == 12
    assert plain.kafka_bootstrap.count(",") == 2
    # An explicit choice is one, and says so.
    assert _settings(tmp_path, KAFKA_BROKERS=1).kafka_brokers_explicit


def test_a_garbled_record_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "kafka-brokers").write_text("three\n")
    assert _settings(tmp_path).kafka_brokers == 1
    (tmp_path / "kafka-brokers").write_text("2\n")
    assert _settings(tmp_path).kafka_brokers == 1


def test_each_node_is_a_voter_of_one_static_quorum_and_a_broker_in_its_own_rack(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path, KAFKA_BROKERS=3)
    nodes = [_props(render_server_properties(settings, tmp_path / f"d{n}", n)) for n in (1, 2, 3)]
    voters = "1@127.0.0.1:29093,2@127.0.0.1:29103,3@127.0.0.1:29113"
    for n, props in enumerate(nodes, start=1):
        port, controller = 29092 + 10 * (n - 1), 29093 + 10 * (n - 1)
        assert props["process.roles"] == "broker,controller"
        assert props["node.id"] == str(n)
        assert props["controller.quorum.voters"] == voters
        assert "controller.quorum.bootstrap.servers" not in props  # static, not dynamic
        assert props["listeners"] == (
            f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}"
        )
        assert props["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{port}"
        assert props["broker.rack"] == f"r{n}"
        assert props["log.dirs"] == str(tmp_path / f"d{n}")
        assert props["num.partitions"] == "12"
        assert props["default.replication.factor"] == "3"
        assert props["min.insync.replicas"] == "2"
        assert props["unclean.leader.election.enable"] == "false"
        assert props["offsets.topic.replication.factor"] == "3"
        assert props["transaction.state.log.replication.factor"] == "3"
        assert props["transaction.state.log.min.isr"] == "2"
        assert props["share.coordinator.state.topic.replication.factor"] == "3"
        assert props["share.coordinator.state.topic.min.isr"] == "2"


def test_the_single_node_keeps_its_dynamic_quorum_of_one(tmp_path: Path) -> None:
    props = _props(render_server_properties(_settings(tmp_path), tmp_path / "data"))
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:29093"
    assert "controller.quorum.voters" not in props
    assert "broker.rack" not in props
    assert props["min.insync.replicas"] == "1"


def test_cluster_nodes_have_their_own_names_ports_and_homes(tmp_path: Path) -> None:
    nodes = cluster_nodes(_settings(tmp_path, KAFKA_BROKERS=3))
    assert [(n.node_id, n.name, n.address) for n in nodes] == [
        (1, "kafka-1", "127.0.0.1:29092"),
        (2, "kafka-2", "127.0.0.1:29102"),
        (3, "kafka-3", "127.0.0.1:29112"),
    ]
    assert nodes[2].pidfile == tmp_path / "kafka-cluster" / "node-3" / "kafka.pid"
    assert nodes[0].pid() is None and not nodes[0].is_running()
    [single] = cluster_nodes(_settings(tmp_path))
    assert (single.name, single.home) == ("kafka", tmp_path / "kafka")


def test_the_cluster_id_is_drawn_once_and_shared(tmp_path: Path) -> None:
    settings = _settings(tmp_path, KAFKA_BROKERS=3)
    assert kafka.cluster_id(settings) == kafka.cluster_id(settings)


def test_an_explicit_count_that_contradicts_the_running_kafka_is_refused(tmp_path: Path) -> None:
    """A single node runs from the state directory (its pidfile names a live process: ours);
    asking for a cluster there must not start a second Kafka beside it."""
    single = KafkaNode(_settings(tmp_path))
    single.home.mkdir(parents=True)
    single.pidfile.write_text(str(os.getpid()))
    with pytest.raises(InfraError, match="a single broker runs"):
        kafka.check_choice(_settings(tmp_path, KAFKA_BROKERS=3))
    kafka.check_choice(_settings(tmp_path, KAFKA_BROKERS=1))  # the same shape: fine
    kafka.check_choice(_settings(tmp_path))  # no choice made: fine


def test_going_back_to_one_broker_is_allowed_once_the_cluster_is_down(tmp_path: Path) -> None:
    kafka.record_brokers(_settings(tmp_path, KAFKA_BROKERS=3))
    kafka.check_choice(_settings(tmp_path, KAFKA_BROKERS=1))  # no node runs: a free choice
    node = cluster_nodes(_settings(tmp_path, KAFKA_BROKERS=3))[1]
    node.home.mkdir(parents=True)
    node.pidfile.write_text(str(os.getpid()))  # one node of the cluster still runs
    with pytest.raises(InfraError, match="a 3-broker cluster runs"):
        kafka.check_choice(_settings(tmp_path, KAFKA_BROKERS=1))


def _quorum_state(settings: Settings, node_id: int, leader: int, epoch: int) -> None:
    folder = settings.kafka_node_home(node_id) / "data" / "__cluster_metadata-0"
    folder.mkdir(parents=True, exist_ok=True)
    # As Kafka 4.1 writes it for a static quorum.
    state = {"clusterId": "", "leaderId": leader, "leaderEpoch": epoch, "votedId": -1}
    (folder / "quorum-state").write_text(json.dumps(state | {"data_version": 0}))


def test_the_active_controller_is_the_leader_of_the_highest_epoch(tmp_path: Path) -> None:
    settings = _settings(tmp_path, KAFKA_BROKERS=3)
    assert active_controller(settings) is None  # nothing formatted yet
    for node in (1, 2, 3):
        _quorum_state(settings, node, leader=2, epoch=4)
    assert active_controller(settings) == 2
    # Node 2 was killed while leader: its file stays at epoch 4; 1 and 3 elected 3 at epoch 5.
    _quorum_state(settings, 1, leader=3, epoch=5)
    _quorum_state(settings, 3, leader=3, epoch=5)
    assert active_controller(settings) == 3


def test_no_active_controller_while_an_election_runs(tmp_path: Path) -> None:
    settings = _settings(tmp_path, KAFKA_BROKERS=3)
    _quorum_state(settings, 1, leader=2, epoch=4)
    _quorum_state(settings, 3, leader=-1, epoch=5)  # a candidate: voted, no leader yet
    assert active_controller(settings) is None
    # One voter already follows the new leader: that is the answer.
    _quorum_state(settings, 1, leader=3, epoch=5)
    assert active_controller(settings) == 3


def test_a_garbled_quorum_state_file_is_skipped(tmp_path: Path) -> None:
    settings = _settings(tmp_path, KAFKA_BROKERS=3)
    _quorum_state(settings, 1, leader=1, epoch=2)
    (settings.kafka_node_home(2) / "data" / "__cluster_metadata-0").mkdir(parents=True)
    (settings.kafka_node_home(2) / "data" / "__cluster_metadata-0" / "quorum-state").write_text(
        "{not json"
    )
    assert active_controller(settings) == 1


def test_the_command_line_names_every_broker_and_needs_only_one(tmp_path: Path) -> None:
    """A command probes Kafka before it loads a client: in a cluster any broker that answers is
    enough (the client finds the others), and a cluster that is all down is named whole."""
    settings = _settings(tmp_path, KAFKA_BROKERS=3)
    server = cli_errors.kafka(settings)
    assert server.address == "127.0.0.1:29092,127.0.0.1:29102,127.0.0.1:29112"
    with socket.socket() as listening, socket.socket() as closed_a, socket.socket() as closed_b:
        for sock in (listening, closed_a, closed_b):
            sock.bind(("127.0.0.1", 0))
        listening.listen()
        ports = [s.getsockname()[1] for s in (closed_a, listening, closed_b)]
        one_up = cli_errors.Server("Kafka", "127.0.0.1", ports[0], (("127.0.0.1", ports[1]),))
        all_down = cli_errors.Server("Kafka", "127.0.0.1", ports[0], (("127.0.0.1", ports[2]),))
        assert cli_errors.answers(one_up)
        assert not cli_errors.answers(all_down)
        with pytest.raises(cli_errors.Unavailable) as caught:
            cli_errors.require(all_down)
    assert str(caught.value).startswith(
        f"Kafka at 127.0.0.1:{ports[0]},127.0.0.1:{ports[2]} is not answering"
    )


def test_the_single_broker_is_named_as_before(tmp_path: Path) -> None:
    assert cli_errors.kafka(_settings(tmp_path)).address == "127.0.0.1:29092"
    override = _settings(tmp_path, KAFKA_BOOTSTRAP_SERVERS="kafka-1:9092, [::1]:9093")
    assert cli_errors.kafka(override).endpoints == [("kafka-1", 9092), ("::1", 9093)]


def test_a_members_partitions_read_as_ranges() -> None:
    assigned = [("validated_orders", n) for n in (0, 1, 2, 5, 7, 8)] + [("db_write", 3)]
    assert partition_ranges(assigned) == "db_write[3] validated_orders[0-2,5,7-8]"
    assert partition_ranges([]) == ""
