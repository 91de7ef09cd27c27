"""The services' logs as an operator reads them: one order's journey through all eight
services (`foodflow logs <id>`), and log files that rotate and stay bounded while a real
service writes them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
import pytest

from foodflow.platform.config import Settings
from foodflow.platform.logs import lines_for_order, log_files
from foodflow.tools import processes
from foodflow.tools.infra import process

from ..service_auth import as_caller
from .test_gateway_orders import cooked, kitchen_staff, order_body, place, sign_up, staff

pytestmark = pytest.mark.e2e

EIGHT = {
    "inventory_service",
    "pricing_service",
    "payment_service",
    "delivery_service",
    "restaurant_service",
    "order_manager",
    "order_writer",
    "gateway",
}


def log_dir(settings: Settings) -> Path:
    return settings.state_dir / "services" / "logs"


async def test_foodflow_logs_finds_an_order_in_every_service_s_log(
    system: Settings, db: asyncpg.Connection, test_item: tuple[str, Decimal]
) -> None:
    item_id, _ = test_item
    base = system.service_url(system.gateway_port)
    async with httpx.AsyncClient(base_url=base, timeout=20.0) as api:
        customer, admin = await sign_up(api), await staff(api, db, "admin")
        order_id = await place(api, customer, order_body(item_id, 1))
        await cooked(api, await kitchen_staff(api, admin), customer, order_id)
    # The services flush INFO lines every 0.2 s; the writer persists a moment after.
    deadline = time.monotonic() + 15
    services: set[str] = set()
    while time.monotonic() < deadline:
        services = {line.service for line in lines_for_order(order_id, log_files(log_dir(system)))}
        if services >= EIGHT:
            break
        await asyncio.sleep(0.5)
    assert services >= EIGHT, f"missing: {sorted(EIGHT - services)}"

    # The command an operator types.
    shown = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "foodflow", "logs", order_id, "--log-dir", str(log_dir(system))],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "400"},
    )
    assert shown.returncode == 0, shown.stderr
    for service in EIGHT:
        assert f" {service} " in shown.stdout, service


async def test_a_running_service_s_log_rotates_and_stays_bounded(system: Settings) -> None:
    """A pricing instance of its own, with a 4 kB limit and 2 backups: hundreds of kilobytes of
    batch lines later, its files are the current one and two backups, none past the limit by
    more than a line; the newest order is found, and a crash's restart writes on in the
    current file."""
    limit, backups = 4096, 2
    svc = processes.ServiceProcess(
        "pricing_service",
        system,
        env={"LOG_MAX_BYTES": str(limit), "LOG_BACKUPS": str(backups)},
        instance=7,
    )
    for old in log_dir(system).glob(f"{svc.name}.log*"):
        old.unlink()
    await asyncio.to_thread(svc.start)
    try:
        headers = as_caller(system, "order_manager", "pricing_service")
        order_ids: list[str] = []
        async with httpx.AsyncClient(base_url=svc.url, timeout=20.0, headers=headers) as client:
            for _ in range(60):
                batch = [str(uuid.uuid4()) for _ in range(40)]
                order_ids += batch
                items = [
                    {"order_id": oid, "items": [{"item_id": "no-such-dish", "quantity": 1}]}
                    for oid in batch
                ]
                answer = await client.post("/calculate_price_batch", json={"items": items})
                assert answer.status_code == 200, answer.text
        await asyncio.sleep(0.5)  # the periodic flush
        files = sorted(p.name for p in log_dir(system).glob(f"{svc.name}.log*"))
        assert files == [f"{svc.name}.log", f"{svc.name}.log.1", f"{svc.name}.log.2"]
        # One line names 40 orders (~1.7 kB): a file ends at most one line past the limit.
        for name in files:
            assert (log_dir(system) / name).stat().st_size < limit + 2500, name
        found = lines_for_order(order_ids[-1], log_files(log_dir(system)))
        assert [line.service for line in found] == ["pricing_service"]
        assert lines_for_order(order_ids[0], log_files(log_dir(system))) == []  # rotated away

        # A crash: the supervisor restarts the service, which writes on in the current file
        # (not in the backup the supervisor's own output was opened as).
        killed = process.read_pid(svc.pidfile)
        assert killed is not None
        os.kill(killed, 9)
        await asyncio.to_thread(svc.await_restart, killed)
        await asyncio.sleep(0.5)
        current = (log_dir(system) / f"{svc.name}.log").read_text()
        assert "restart 1" in current and "Pricing service ready" in current
    finally:
        await asyncio.to_thread(svc.stop)
