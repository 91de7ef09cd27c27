"""docker-compose.yaml, alone and with docker-compose.cluster.yaml over it, as Compose resolves
them: `docker-compose config` (Debian's 1.29, installed by `make test`: `foodflow infra
compose`) checks both against the Compose schema and prints the merged result, with no Docker
engine; the tests then check what a single broker and a three-broker cluster need."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from foodflow.platform.errors import InfraError
from foodflow.tools.infra import compose, process

ROOT = Path(__file__).resolve().parents[2]
SINGLE = ROOT / "docker-compose.yaml"
CLUSTER = ROOT / "docker-compose.cluster.yaml"
FOODFLOW_SERVICES = {
    "inventory_service",
    "pricing_service",
    "payment_service",
    "delivery_service",
    "restaurant_service",
    "order_manager",
    "order_writer",
    "gateway",
}
TOPICS = ("validated_orders", "order_status_updates", "db_write_order_status", "dead_letter_orders")
# What `foodflow secrets >> .env` provides; placeholders here (compose only checks they are set).
SECRET_VARIABLES = [
    "SERVICE_PUBLIC_KEYS",
    "JWT_SIGNING_KEYS",
    "JWT_ACTIVE_KEY_ID",
    "DEMO_OPERATOR_PASSWORD",
    *(f"{service.upper()}_PRIVATE_KEY" for service in FOODFLOW_SERVICES),
]

pytestmark = pytest.mark.integration

Config = dict[str, Any]


@pytest.fixture(scope="module")
def docker_compose() -> str:
    try:
        return compose.require_compose()
    except InfraError as exc:
        if os.environ.get("CI"):  # CI installs it first: missing there is a failure
            pytest.fail(str(exc))
        pytest.skip(f"{exc.message}: {exc.log_tail}")


def run_config(
    docker_compose: str, *files: Path, secrets: bool = True, tmp: Path
) -> subprocess.CompletedProcess[str]:
    # A clean environment and an empty --env-file: no developer's .env or COMPOSE_* leaks in.
    env_file = tmp / "empty.env"
    env_file.write_text("")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp)}
    if secrets:
        env |= dict.fromkeys(SECRET_VARIABLES, "placeholder")
    arguments = [docker_compose, "--env-file", str(env_file), "--project-directory", str(ROOT)]
    for file in files:
        arguments += ["-f", str(file)]
    return subprocess.run(
        [*arguments, "config"], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def single(docker_compose: str, tmp_path_factory: pytest.TempPathFactory) -> Config:
    return resolved(docker_compose, SINGLE, tmp=tmp_path_factory.mktemp("single"))


@pytest.fixture(scope="module")
def cluster(docker_compose: str, tmp_path_factory: pytest.TempPathFactory) -> Config:
    return resolved(docker_compose, SINGLE, CLUSTER, tmp=tmp_path_factory.mktemp("cluster"))


def resolved(docker_compose: str, *files: Path, tmp: Path) -> Config:
    done = run_config(docker_compose, *files, tmp=tmp)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    assert isinstance(config, dict)
    return config


def brokers(config: Config) -> dict[str, dict[str, str]]:
    """The Kafka nodes (services that run the broker, not the one-shot init), by name."""
    return {
        name: service["environment"]
        for name, service in config["services"].items()
        if service.get("image", "").startswith("apache/kafka:")
        and "KAFKA_NODE_ID" in service.get("environment", {})
    }


def init_script(config: Config) -> str:
    return "\n".join(config["services"]["kafka-init"]["command"])


def test_a_single_broker_by_default(single: Config) -> None:
    config = single
    assert FOODFLOW_SERVICES | {"kafka", "kafka-init", "postgres", "redis"} == set(
        config["services"]
    )
    (node,) = brokers(config).values()
    assert node["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert node["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert "--partitions 3 --replication-factor 1" in init_script(config)
    for name in FOODFLOW_SERVICES:
        environment = config["services"][name]["environment"]
        assert (environment["KAFKA_HOST"], environment["KAFKA_PORT"]) == ("kafka", "9092")
        assert "KAFKA_BOOTSTRAP_SERVERS" not in environment


def test_the_cluster_file_makes_three_replicating_nodes(
    docker_compose: str, tmp_path: Path
) -> None:
    single = resolved(docker_compose, SINGLE, tmp=tmp_path)
    config = resolved(docker_compose, SINGLE, CLUSTER, tmp=tmp_path)
    nodes = brokers(config)
    assert set(nodes) == {"kafka", "kafka-2", "kafka-3"}
    ids = {name: int(env["KAFKA_NODE_ID"]) for name, env in nodes.items()}
    assert sorted(ids.values()) == [1, 2, 3]
    voters = {f"{ids[name]}@{name}:9093" for name in nodes}
    for name, env in nodes.items():
        # One quorum of three voters, each node a controller and a broker.
        assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters
        assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert f"PLAINTEXT://{name}:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
        # What a host client is told is the port the host really publishes.
        (published,) = config["services"][name]["ports"]
        host_port = re.fullmatch(r"127\.0\.0\.1:(\d+):29092(/tcp)?", published)
        assert host_port, published
        assert f"PLAINTEXT_HOST://localhost:{host_port[1]}" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert len({env["CLUSTER_ID"] for env in nodes.values()}) == 1
    assert nodes["kafka"]["CLUSTER_ID"] != brokers(single)["kafka"]["CLUSTER_ID"]
    assert len({env["KAFKA_BROKER_RACK"] for env in nodes.values()}) == 3
    # Each node its own volume; node 1 never reuses a single broker's data.
    volumes = [config["services"][name]["volumes"][0].split(":")[0] for name in nodes]
    assert len(set(volumes)) == 3
    assert "kafka-data" not in volumes
    # The topics: created once every node answers, 12 partitions, RF 3, min ISR 2.
    init = config["services"]["kafka-init"]
    assert set(init["depends_on"]) == set(nodes)
    assert {d["condition"] for d in init["depends_on"].values()} == {"service_healthy"}
    script = init_script(config)
    for topic in TOPICS:
        assert topic in script
    assert "--partitions 12 --replication-factor 3 --config min.insync.replicas=2" in script
    # Every service bootstraps from all three brokers.
    for name in FOODFLOW_SERVICES:
        bootstrap = config["services"][name]["environment"]["KAFKA_BOOTSTRAP_SERVERS"]
        assert set(bootstrap.split(",")) == {f"{node}:9092" for node in nodes}


def test_no_secret_has_a_default(docker_compose: str, tmp_path: Path) -> None:
    done = run_config(docker_compose, SINGLE, CLUSTER, secrets=False, tmp=tmp_path)
    assert done.returncode != 0
    assert "run foodflow secrets >> .env first" in done.stderr


def test_a_broken_file_is_refused(docker_compose: str, tmp_path: Path) -> None:
    """The check checks: a misspelt key and a dependency on no service both fail `config`."""
    misspelt = tmp_path / "misspelt.yaml"
    misspelt.write_text(CLUSTER.read_text().replace("hostname: kafka-3", "hostnme: kafka-3"))
    done = run_config(docker_compose, SINGLE, misspelt, tmp=tmp_path)
    assert done.returncode != 0
    assert "hostnme" in done.stderr
    dangling = tmp_path / "dangling.yaml"
    dangling.write_text(
        CLUSTER.read_text().replace(
            "      kafka-3:\n        condition", "      kafka-4:\n        condition"
        )
    )
    done = run_config(docker_compose, SINGLE, dangling, tmp=tmp_path)
    assert done.returncode != 0
    assert "kafka-4" in done.stderr


def test_the_installer_says_what_to_install_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compose, "find_compose", lambda: None)
    monkeypatch.setattr(process, "is_root", lambda: False)
    monkeypatch.setattr(process, "apt_install", lambda *a, **kw: pytest.fail("no install"))
    with pytest.raises(InfraError) as caught:
        compose.install_compose()
    assert "sudo apt-get install -y docker-compose" in caught.value.log_tail
    with pytest.raises(InfraError) as caught:
        compose.require_compose()
    assert "foodflow infra compose" in caught.value.log_tail


def test_the_installer_installs_with_apt_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    installed: list[list[str]] = []
    monkeypatch.setattr(process, "is_root", lambda: True)
    monkeypatch.setattr(
        shutil,
        "which",
        lambda name: f"/usr/bin/{name}" if installed or name == "apt-get" else None,
    )

    def apt(packages: list[str], *, server: str, show_output: bool = False) -> None:
        assert show_output  # apt's own output goes to the terminal
        installed.append(packages)

    monkeypatch.setattr(process, "apt_install", apt)
    assert compose.install_compose() == ("/usr/bin/docker-compose", True)
    assert installed == [["docker-compose"]]
