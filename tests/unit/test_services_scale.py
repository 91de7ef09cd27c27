"""`foodflow up --scale`: instance names, ports, pidfiles and logs; what --scale accepts."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from foodflow.platform.config import Settings
from foodflow.tools import processes


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(FOODFLOW_STATE_DIR=tmp_path)


def test_parse_scale_accepts_scalable_services_only() -> None:
    assert processes.parse_scale(["order_manager=2", "order_writer=3"]) == {
        "order_manager": 2,
        "order_writer": 3,
    }
    for bad in ("inventory_service=2", "order_manager=0", "order_manager=9", "order_manager"):
        with pytest.raises(ValueError):
            processes.parse_scale([bad])


def test_extra_instance_has_its_own_port_pidfile_and_log(settings: Settings) -> None:
    first = processes.ServiceProcess("order_manager", settings)
    second = processes.ServiceProcess("order_manager", settings, {"A": "1"}, instance=1)
    assert (first.name, first.port) == ("order_manager", settings.order_manager_port)
    assert (second.name, second.port) == ("order_manager-1", settings.order_manager_port + 100)
    assert second.pidfile.name == "order_manager-1.pid"
    assert second.log.name == "order_manager-1.log"
    # The instance learns its port, its number (its static group membership) and the Kafka
    # brokers chosen (one, or a cluster's) through the settings the service reads.
    assert second.env == {
        "A": "1",
        "FOODFLOW_INSTANCE": "1",
        "ORDER_MANAGER_PORT": str(second.port),
        "KAFKA_BROKERS": str(settings.kafka_brokers),
    }
    assert first.env == {"FOODFLOW_INSTANCE": "0", "KAFKA_BROKERS": str(settings.kafka_brokers)}


def test_all_services_lists_requested_and_recorded_instances(settings: Settings) -> None:
    home = settings.state_dir / "services"
    home.mkdir(parents=True)
    (home / "order_writer-2.pid").write_text("999999")
    names = [s.name for s in processes.all_services(settings, scale={"order_manager": 2})]
    assert {"order_manager", "order_manager-1", "order_writer", "order_writer-2"} <= set(names)
    assert names.index("order_manager") < names.index("order_manager-1")


def test_a_service_that_does_not_answer_is_not_healthy(settings: Settings) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    svc = processes.ServiceProcess("pricing_service", settings)
    svc.port = free_port
    assert not svc.healthy()
