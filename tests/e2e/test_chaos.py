"""Small chaos runs in the suite. One: every service SIGKILLed once (the restaurant service
among them), Kafka, Redis and PostgreSQL restarted once, while orders flow, a share of them to
be delivered through kitchens that reject some and one that never answers; then the
invariants must hold (and no courier is sent for a rejected order, no refund happens twice).
Two: the faults of a lost cache, poison and short outages (FLUSHALL, poison messages of each
kind, a SIGKILL of one of two order managers, 10 s outages of the payment service and
PostgreSQL); then also nothing is charged without a record, nothing FAILED by those short
outages, each bad message is dead-lettered exactly once and no fault stalls the system for
more than 15 s."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from decimal import Decimal

import asyncpg
import pytest

from foodflow.contracts.orders import OrderItemIn, OrderStatus, ValidatedOrder
from foodflow.platform.config import Settings
from foodflow.tools import processes, tracking
from foodflow.tools.chaos.faults import POISON_KINDS
from foodflow.tools.chaos.runner import ChaosConfig, ChaosRun
from foodflow.tools.cli_errors import ExitCode
from foodflow.tools.infra import process
from foodflow.tools.restore import read_environ

from .conftest import E2E_ENV

pytestmark = pytest.mark.e2e


async def test_invariants_hold_through_kills_and_restarts(
    system: Settings, test_item: tuple[str, Decimal]
) -> None:
    stages: dict[str, tuple[int, int]] = {}

    def progress(stage: str, done: int, total: int) -> None:
        stages[stage] = (done, total)

    cfg = ChaosConfig(
        orders=400,
        rate=20.0,
        kills_per_service=1,
        restart_infra=True,
        recover_timeout=180.0,
        seed=7,
        service_env=E2E_ENV,
        flushall=False,
        poison=(),
        kill2=False,
        settle_seconds=0,  # ten faults within the 20 s of sending, as many at once as may be
        kitchens=True,
    )
    run = ChaosRun(system, cfg, progress)
    report = await run.run()

    assert len(report.faults) >= 4 + 3, report.faults
    assert report.lost == [], report
    assert report.duplicated == []
    assert report.stuck == []
    assert report.inconsistent == []
    assert report.invalid_not_failed == []
    assert report.stock_drift == {}
    assert report.recover_seconds is not None
    assert report.dead_letters >= report.invalid_sent
    assert sum(report.outcomes.values()) == len(report.lost) + sum(
        n for status, n in report.outcomes.items() if status != "MISSING"
    )
    assert report.outcomes.get("CONFIRMED", 0) > 0
    # The restaurant faults: orders went to kitchens; some were rejected or never answered,
    # and ended refunded, never with a courier.
    assert report.to_deliver > 0
    assert report.courier_for_rejected == [] and report.refunded_twice == []
    assert report.outcomes.get("DELIVERED", 0) > 0
    assert report.outcomes.get("CANCELLED", 0) > 0
    assert report.passed
    assert stages["sending"] == (400, 400)
    conn = await asyncpg.connect(system.postgres_dsn)
    try:
        left = await conn.fetchval(
            "SELECT count(*) FROM inventory_items WHERE item_id = ANY($1::text[])", run.items
        )
    finally:
        await conn.close()
    assert left == 0  # the run's own menu items are taken off the menu after the audit

    await canary_confirms(system, test_item[0])


async def test_a_lost_cache_poison_and_short_outages_fail_lose_and_wedge_nothing(
    system: Settings, test_item: tuple[str, Decimal]
) -> None:
    cfg = ChaosConfig(
        # Slow enough that orders flow through every fault: faults come one at a time, 20 s
        # apart (the longest stall allowed, and 5 s), so that each stall shows whole.
        orders=400,
        rate=3.0,
        kills_per_service=0,
        restart_infra=False,
        recover_timeout=180.0,
        seed=13,
        service_env=E2E_ENV,
        flushall=True,
        poison=POISON_KINDS,
        kill2=True,
        outages=("payment_service", "postgres"),
        outage_seconds=10.0,
        # The grace the services run with, which decides what a short outage is.
        grace_seconds=Settings.model_validate(E2E_ENV).dependency_grace_seconds,
    )
    payment = processes.ServiceProcess("payment_service", system)
    payment_pid = process.read_pid(payment.pidfile)
    payment_env = read_environ(payment_pid)
    run = ChaosRun(system, cfg, lambda stage, done, total: None)
    report = await run.run()

    # The outage stopped the payment service and chaos started it again: with the settings it
    # had (and the run's E2E_ENV over them, as asked), not those of the shell chaos runs in.
    assert payment_env is not None
    assert process.read_pid(payment.pidfile) != payment_pid
    assert read_environ(process.read_pid(payment.pidfile)) == {**payment_env, **E2E_ENV}
    kinds = [f.split()[1] for f in report.faults]
    assert sorted(kinds) == ["10s", "10s", "4", "Redis", "SIGKILL"], report.faults
    assert report.poison_sent == len(POISON_KINDS)
    broken = report.broken()
    assert not broken, "; ".join(
        [f"{name}: {shortly(value)}" for name, value in broken.items()] + report.faults
    )
    assert report.stalls and report.passed
    second = processes.ServiceProcess("order_manager", system, E2E_ENV, instance=1)
    assert not second.is_running()  # scaled back to one after the run
    await canary_confirms(system, test_item[0])


def test_brokers_refuses_a_kafka_that_is_no_cluster(system: Settings) -> None:
    """`foodflow chaos --brokers 3` against the suite's single node: a usage error (2) that
    says what is wrong and how to start a cluster, before anything is sent or killed."""
    done = subprocess.run(
        [sys.executable, "-m", "foodflow", "chaos", "--brokers", "3", "--orders", "10"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    assert done.returncode == ExitCode.USAGE, done.stdout + done.stderr
    assert "not a 3-node cluster" in done.stdout
    assert "foodflow up --brokers 3" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def shortly(value: object) -> str:
    """A broken invariant in a line: how many and the first few."""
    if isinstance(value, list | dict):
        return f"{len(value)}, e.g. {list(value)[:3]}"
    return str(value)


async def canary_confirms(system: Settings, item_id: str) -> None:
    """Recovered means serving again, not only finishing what was in flight: a service killed
    last rejoins its consumer group after the old member's session times out. A new order must
    go all the way through (the session's next tests run against this same system)."""
    canary = ValidatedOrder(
        user_id="chaos-canary", items=[OrderItemIn(item_id=item_id, quantity=1)]
    )
    since_ms = int(time.time() * 1000)
    order_id = await asyncio.to_thread(tracking.send_order, system, canary)
    statuses = await asyncio.to_thread(
        lambda: [u.status for u in tracking.follow(system, order_id, since_ms, timeout=120.0)]
    )
    assert statuses and statuses[-1] == OrderStatus.CONFIRMED, statuses
