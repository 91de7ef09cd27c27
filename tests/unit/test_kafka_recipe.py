import base64
from pathlib import Path

from foodflow.platform.config import Settings
from foodflow.tools.infra.kafka import new_cluster_id, render_server_properties


def test_cluster_id_is_16_random_bytes_urlsafe_base64_unpadded() -> None:
    ids = {new_cluster_id() for _ in range(50)}
    assert len(ids) == 50
    for cid in ids:
        assert len(cid) == 22 and "=" not in cid
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_no_cluster_id_starts_with_a_dash() -> None:
    """StorageTool reads `-t -Xy…` as a missing value: a clean-clone CI run failed on one. With
    1 in 64 ids starting with "-", 2,000 draws meet ~31 (all redrawn)."""
    assert not any(new_cluster_id().startswith("-") for _ in range(2000))


def _props(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def test_server_properties_describe_one_combined_kraft_node(tmp_path: Path) -> None:
    settings = Settings(KAFKA_PORT=19092, KAFKA_CONTROLLER_PORT=19093, FOODFLOW_TOPIC_PARTITIONS=6)
    props = _props(render_server_properties(settings, tmp_path / "data"))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["num.partitions"] == "6"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
    ):
        assert props[key] == "1"
    assert "zookeeper.connect" not in props
