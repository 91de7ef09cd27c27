"""A broker of a 3-node Kafka cluster killed under load (SIGKILL, started again after a
downtime longer than the controller takes to fence it): no order lost, duplicated or stuck, no
stock drift, no stall over 15 s, and every partition fully replicated again within 60 s of the
broker's return. The small version of `foodflow chaos --brokers 3`, on a system of its own
(conftest.py)."""

from __future__ import annotations

import dataclasses

import asyncpg
import pytest

from foodflow.platform.config import Settings
from foodflow.tools.chaos.brokers import cluster_problem
from foodflow.tools.chaos.runner import ChaosConfig, ChaosRun
from foodflow.tools.cli_errors import ExitCode
from foodflow.tools.infra import kafka

from ..test_chaos import shortly
from .conftest import CLUSTER_SERVICE_ENV

# In `make test` since its failures were fixed (docs/reliability.md): its first runs found an
# order with two transitions of one version, stock drift from an order TIMED_OUT as its stock
# commit landed, and a static consumer left wedged by a fatal error after its coordinator died.
pytestmark = [pytest.mark.e2e, pytest.mark.cluster]


# The budget is about 3 minutes with the set-up (a quiet machine); the ceiling is for a busy
# one, where three JVMs and eight services take minutes to start.
@pytest.mark.timeout(600)
async def test_a_broker_killed_under_load_loses_doubles_and_wedges_nothing(
    cluster_system: Settings,
) -> None:
    assert cluster_problem(cluster_system, 3) is None
    code, _ = cluster_problem(cluster_system, 4) or (None, "")
    assert code == ExitCode.USAGE  # three nodes are no 4-node cluster
    pids = {node.node_id: node.pid() for node in kafka.cluster_nodes(cluster_system)}

    cfg = ChaosConfig(
        # 10 orders a second for 30 s; the broker is killed 4.5 s in, stays down 12 s (the
        # controller fences it after 9 s without a heartbeat: leaders move, replica sets
        # shrink), and has to catch up once back.
        orders=300,
        rate=10.0,
        kills_per_service=0,
        restart_infra=False,
        flushall=False,
        poison=(),
        kill2=False,
        brokers=3,
        broker_faults=("kill_broker",),
        broker_downtime=12.0,
        recover_timeout=90.0,
        seed=15,
        service_env=CLUSTER_SERVICE_ENV,
    )
    report = await ChaosRun(cluster_system, cfg, lambda stage, done, total: None).run()

    # What foodflow answers for is the stall once Kafka has moved the dead broker's leaders.
    # The controller fences it after `broker.session.timeout.ms` (5 s); on a machine starved by
    # the rest of the suite that took 8.2 s, and the stall (16.5 s) grew by the same: what the
    # controller took past its timeout is allowed on top of the 15 s. `foodflow chaos` itself
    # allows nothing extra (docs/reliability.md has its 10,000-order runs).
    [(_, moved)] = report.leaders_moved
    assert moved is not None, report.faults
    late_fencing = max(0.0, moved - kafka.BROKER_SESSION_TIMEOUT_MS / 1000)
    report = dataclasses.replace(report, max_stall_seconds=cfg.max_stall_seconds + late_fencing)
    broken = report.broken()
    assert not broken, "; ".join(
        [f"{name}: {shortly(value)}" for name, value in broken.items()]
        + report.faults
        + await failures_told(cluster_system, report.failed_by_short_fault)
    )
    assert report.outcomes.get("CONFIRMED", 0) > 0
    assert report.passed
    # The one broker fault ran, on the node it names, which was killed and started again.
    [(_, in_sync)] = report.in_sync
    assert in_sync is not None and in_sync <= cfg.in_sync_within
    [line] = report.faults
    killed = next(n for n in pids if f"broker {n}:" in line)
    after = {node.node_id: node.pid() for node in kafka.cluster_nodes(cluster_system)}
    assert after[killed] != pids[killed] and after[killed] is not None
    assert all(after[n] == pids[n] for n in pids if n != killed), (pids, after)


async def failures_told(settings: Settings, order_ids: list[str]) -> list[str]:
    """What the database says of orders that should not have failed: their reason, detail and
    the times of their transitions (a clean-clone CI run failed one, and said only its id)."""
    if not order_ids:
        return []
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        rows = await conn.fetch(
            "SELECT o.order_id, o.reason, o.detail,"
            " string_agg(h.status || '@' || to_char(h.at, 'HH24:MI:SS.MS'), ' ' ORDER BY h.version)"
            " AS timeline FROM orders o JOIN order_status_history h USING (order_id)"
            " WHERE o.order_id = ANY($1::uuid[]) GROUP BY o.order_id, o.reason, o.detail",
            order_ids[:5],
        )
    finally:
        await conn.close()
    return [f"{r['order_id']}: {r['reason']} ({r['detail']}) {r['timeline']}" for r in rows]
