"""A small chaos run in the suite: every service SIGKILLed once, Kafka, Redis and PostgreSQL
restarted once, while orders flow; then the five invariants must hold."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import asyncpg
import pytest

from foodflow.contracts.orders import OrderItemIn, OrderStatus, ValidatedOrder
from foodflow.platform.config import Settings
from foodflow.tools import tracking
from foodflow.tools.chaos.runner import ChaosConfig, ChaosRun

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

    # Recovered means serving again, not only finishing what was in flight: a service killed
    # last rejoins its consumer group after the old member's session times out. A new order
    # must go all the way through (the session's next tests run against this same system).
    canary = ValidatedOrder(
        user_id="chaos-canary", items=[OrderItemIn(item_id=test_item[0], quantity=1)]
    )
    since_ms = int(time.time() * 1000)
    order_id = await asyncio.to_thread(tracking.send_order, system, canary)
    statuses = await asyncio.to_thread(
        lambda: [u.status for u in tracking.follow(system, order_id, since_ms, timeout=120.0)]
    )
    assert statuses and statuses[-1] == OrderStatus.CONFIRMED, statuses
