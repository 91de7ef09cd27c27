"""A system of the cluster chaos test's own: a 3-node Kafka cluster, a PostgreSQL, a Redis and
the eight services, on ports and in a state directory of their own (`CLUSTER_PROFILE`).

Not the suite's single-broker system (tests/profile.py), restarted against a cluster: that
system runs on for the rest of the suite, and the surest way to leave it as it was found is not
to touch it. The price is one more PostgreSQL and Redis for the length of one test module
(seconds to start; the first run's initdb a few more). The Kafka jars are the suite's own,
linked from the test profile's cache, so no download.

Everything this module starts it stops at the end, also when the test fails or is interrupted
(the fixture's `finally`); a run killed outright leaves pidfiles in `.state/test-cluster`,
which the next run finds and stops first. Kafka nodes, services and servers are stopped by
their pidfiles only.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from foodflow.platform.config import Settings
from foodflow.platform.errors import InfraError
from foodflow.tools import processes
from foodflow.tools.infra import kafka, manager
from foodflow.tools.secrets import ensure_secrets, load_settings
from tests.profile import CHECKOUT

from ..conftest import E2E_ENV

# Beside the test profile's ports: its Kafka is 19092/19093 (cluster nodes +10 each, 19102…),
# the integration tier's cluster 19392… (KAFKA_PORT + 300), these nodes 19192/19193,
# 19202/19203, 19212/19213; services 19500-19507 (a second order manager would be 19605).
CLUSTER_PROFILE: dict[str, str] = {
    "FOODFLOW_STATE_DIR": str(CHECKOUT / ".state" / "test-cluster"),
    "KAFKA_BROKERS": "3",
    "KAFKA_PORT": "19192",
    "KAFKA_CONTROLLER_PORT": "19193",
    "POSTGRES_PORT": "15532",
    "REDIS_PORT": "16479",
    "GATEWAY_PORT": "19500",
    "INVENTORY_PORT": "19501",
    "PRICING_PORT": "19502",
    "PAYMENT_PORT": "19503",
    "DELIVERY_PORT": "19504",
    "RESTAURANT_PORT": "19507",
    "ORDER_MANAGER_PORT": "19505",
    "ORDER_WRITER_PORT": "19506",
}
# What the cluster's services run with: the e2e suite's settings, and this profile's ports over
# the suite's (the services inherit the test process's environment, which holds the test
# profile's).
CLUSTER_SERVICE_ENV = {**E2E_ENV, **CLUSTER_PROFILE}
KAFKA_READY_SECONDS = 300.0


@pytest.fixture(scope="module")
def cluster_system(settings: Settings) -> Iterator[Settings]:
    """The cluster profile's whole system up for this module, stopped after it."""
    cluster = Settings(**CLUSTER_PROFILE)  # type: ignore[arg-type]
    cache = cluster.state_dir / "cache"
    if not cache.exists() and (settings.state_dir / "cache").is_dir():
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.symlink_to(settings.state_dir / "cache", target_is_directory=True)
    ensure_secrets(cluster, report=lambda _: None)
    cluster = load_settings(cluster)
    try:
        stop(cluster)  # what a run killed outright left behind
        try:
            manager.up(cluster)
        except InfraError:
            # A busy machine: three JVMs formatting and electing a controller may answer
            # later than `infra up` waits (seen at a load of 30 on 2 cores). Once more, longer.
            for node in kafka.cluster_nodes(cluster):
                node.wait_ready(timeout=KAFKA_READY_SECONDS)
            manager.up(cluster)
        start_services(cluster)
        yield cluster
    finally:
        stop(cluster)


def start_services(cluster: Settings) -> None:
    """Every service, started side by side rather than one after another as `foodflow up`
    does: most of a start is the interpreter's imports and waiting for `/ready`, and the
    order manager's `/ready` simply waits until the services it calls answer. Minutes saved
    for the suite's time budget on a busy machine."""
    with ThreadPoolExecutor(max_workers=len(processes.SERVICES)) as pool:
        starts = [
            pool.submit(processes.ServiceProcess(name, cluster, CLUSTER_SERVICE_ENV).start, 120.0)
            for name in processes.SERVICES
        ]
        for start in starts:
            start.result()


def stop(cluster: Settings) -> None:
    """Services first (they drain into Kafka and PostgreSQL), then Kafka, Redis, PostgreSQL."""
    try:
        processes.down(cluster)
    finally:
        manager.down(cluster)
