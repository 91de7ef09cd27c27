"""The courier simulator against the running system: orders placed through the gateway are
delivered by the seeded couriers, every transition lands in PostgreSQL, couriers free up for
the orders waiting behind them, and a gateway killed and restarted does not stop it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest

from foodflow.contracts import topics
from foodflow.platform.config import Settings
from foodflow.tools import processes
from foodflow.tools.infra import process
from foodflow.tools.secrets import courier_password_file

from .conftest import E2E_ENV, Tail
from .test_gateway_orders import ADDRESS, Headers, sign_up, wait_status

pytestmark = pytest.mark.e2e

# The kitchen's steps and the courier's: the courier is sent to reach the kitchen when the food
# is ready, so COURIER_ASSIGNED falls anywhere after the acceptance and before the pickup.
KITCHEN_STEPS = ["RESTAURANT_ACCEPTED", "PREPARING", "READY_FOR_PICKUP"]
EVERY_STEP = ["RECEIVED", "PROCESSING", "CONFIRMED", *KITCHEN_STEPS, "PICKED_UP", "DELIVERED"]
# Far below COURIER_WAIT_LIMIT_SECONDS (600): an order that waits for a courier that long is
# an order no simulated courier came back for.
DELIVERED_WITHIN_SECONDS = 120.0
# Clocks, rounding and a busy machine, on top of the tolerance the settings give.
ARRIVAL_SLACK_SECONDS = 3.0


@pytest.fixture(scope="module")
def simulator(system: Settings) -> Iterator[processes.SimulatorProcess]:
    """The simulator as `foodflow up` runs it (supervised); stopped afterwards if this module
    started it, so that the other tests find their orders where they left them."""
    sim = processes.SimulatorProcess(system)
    started = sim.start()
    listed = {s.name: s for s in processes.status(system)}
    assert listed[processes.SIMULATOR].running, "foodflow status lists it while it runs"
    yield sim
    if started:
        sim.stop()


@pytest.fixture
async def api(system: Settings) -> AsyncIterator[httpx.AsyncClient]:
    base = system.service_url(system.gateway_port)
    async with httpx.AsyncClient(base_url=base, timeout=20.0) as client:
        yield client


@pytest.fixture
async def stocked_item(db: asyncpg.Connection) -> str:
    """An item of this test's own, with stock for many orders."""
    item_id = f"test-{uuid.uuid4().hex[:10]}"
    await db.execute(
        "INSERT INTO inventory_items (item_id, name, price, stock) VALUES ($1, 'test', 3.10, 500)",
        item_id,
    )
    return item_id


async def place(api: httpx.AsyncClient, customer: Headers, item_id: str) -> str:
    body = {"items": [{"item_id": item_id, "quantity": 1}], "delivery_address": ADDRESS}
    answer = await api.post("/orders", json=body, headers=customer)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["order_id"])


async def history(db: asyncpg.Connection, order_id: str) -> list[tuple[int, str]]:
    rows = await db.fetch(
        "SELECT version, status FROM order_status_history WHERE order_id = $1 ORDER BY version",
        uuid.UUID(order_id),
    )
    return [(r["version"], r["status"]) for r in rows]


async def stored_delivered(db: asyncpg.Connection, order_id: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await db.fetchval(
            "SELECT status FROM orders WHERE order_id = $1", uuid.UUID(order_id)
        )
        if status == "DELIVERED":
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"order {order_id} not DELIVERED in PostgreSQL after {timeout}s")


async def test_an_order_is_delivered_with_every_transition_in_postgresql(
    simulator: processes.SimulatorProcess,
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    stocked_item: str,
    tail: Tail,
    system: Settings,
) -> None:
    written = tail(topics.DB_WRITE_ORDER_STATUS)
    customer = await sign_up(api)
    order_id = await place(api, customer, stocked_item)

    final = await wait_status(
        api,
        customer,
        order_id,
        "DELIVERED",
        "CANCELLED",
        "FAILED",
        timeout=DELIVERED_WITHIN_SECONDS,
    )
    assert final["status"] == "DELIVERED", final
    steps = [t["status"] for t in final["timeline"]]
    assert [s for s in steps if s != "COURIER_ASSIGNED"] == EVERY_STEP, steps
    assert steps.count("COURIER_ASSIGNED") == 1
    assert (
        steps.index("RESTAURANT_ACCEPTED")
        < steps.index("COURIER_ASSIGNED")
        < steps.index("PICKED_UP")
    )
    await stored_delivered(db, order_id)
    assert await history(db, order_id) == list(enumerate(steps, start=1))
    # Each step from the handover on went to the writer as it happened, not only with the end.
    await written.until({order_id}, len(steps) - 2)
    sent = [json.loads(v)["status"] for v in written.values(order_id)]
    assert sent == steps[2:]
    carrying = await db.fetchval(
        "SELECT count(*) FROM couriers WHERE current_order = $1", uuid.UUID(order_id)
    )
    assert carrying == 0, "the courier is free again"
    # The simulator used a seeded account, whose password is a generated secret.
    courier = await db.fetchval(
        "SELECT courier_id FROM deliveries WHERE order_id = $1", uuid.UUID(order_id)
    )
    secret = courier_password_file(system, courier)
    assert secret.stat().st_mode & 0o777 == 0o600 and len(secret.read_text().strip()) >= 24
    account = await db.fetchrow(
        "SELECT role, courier_id FROM users WHERE email = $1", f"{courier}@foodflow.example"
    )
    assert account is not None and (account["role"], account["courier_id"]) == ("courier", courier)


async def test_couriers_reach_the_kitchen_when_the_food_is_ready(
    simulator: processes.SimulatorProcess,
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    stocked_item: str,
) -> None:
    """The dispatch is timed to the kitchen: each courier arrives at the restaurant within the
    tolerance of the ready-by time the kitchen gave (early by up to DISPATCH_TOLERANCE_SECONDS,
    late by no more than a dispatch round and a simulated courier's poll)."""
    settings = Settings.model_validate(E2E_ENV)
    early = settings.dispatch_tolerance_seconds + ARRIVAL_SLACK_SECONDS
    late = settings.dispatch_interval_seconds + settings.courier_sim_poll_seconds
    late += ARRIVAL_SLACK_SECONDS
    customer = await sign_up(api)
    orders = [await place(api, customer, stocked_item) for _ in range(3)]
    for order_id in orders:
        final = await wait_status(
            api, customer, order_id, "DELIVERED", "CANCELLED", timeout=DELIVERED_WITHIN_SECONDS
        )
        assert final["status"] == "DELIVERED", final
        ready_by = datetime.fromisoformat(final["kitchen"]["ready_by"])
        arrived = await db.fetchval(
            "SELECT arrived_at FROM deliveries WHERE order_id = $1", uuid.UUID(order_id)
        )
        assert arrived is not None, "the courier reported their arrival"
        off = (arrived - ready_by).total_seconds()
        assert -early <= off <= late, f"arrived {off:+.1f} s from the ready-by time"


async def test_more_orders_than_couriers_are_all_delivered(
    simulator: processes.SimulatorProcess,
    api: httpx.AsyncClient,
    db: asyncpg.Connection,
    stocked_item: str,
) -> None:
    couriers = await db.fetchval("SELECT count(*) FROM couriers")
    customer = await sign_up(api)
    orders = [await place(api, customer, stocked_item) for _ in range(couriers + 3)]

    finals = await asyncio.gather(
        *(
            wait_status(
                api,
                customer,
                order_id,
                "DELIVERED",
                "CANCELLED",
                "FAILED",
                timeout=DELIVERED_WITHIN_SECONDS,
            )
            for order_id in orders
        )
    )

    assert [(f["status"], f.get("reason")) for f in finals] == [("DELIVERED", None)] * len(orders)
    busy = await db.fetchval(
        "SELECT count(*) FROM couriers WHERE current_order = ANY($1::uuid[])",
        [uuid.UUID(o) for o in orders],
    )
    assert busy == 0


def _gateway_log_lines(sim: processes.SimulatorProcess, since: int) -> list[dict[str, Any]]:
    lines = sim.log.read_bytes()[since:].decode(errors="replace").splitlines()
    found = []
    for line in lines:
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return [f for f in found if "Gateway" in str(f.get("message", ""))]


async def test_the_simulator_survives_a_gateway_restart(
    simulator: processes.SimulatorProcess,
    api: httpx.AsyncClient,
    stocked_item: str,
    system: Settings,
) -> None:
    sim_pid = process.read_pid(simulator.pidfile)
    restarts = simulator.restart_record().restarts
    log_from = simulator.log.stat().st_size
    customer = await sign_up(api)
    order_id = await place(api, customer, stocked_item)
    await wait_status(
        api, customer, order_id, "COURIER_ASSIGNED", "READY_FOR_PICKUP", "PICKED_UP", "DELIVERED"
    )

    gateway = processes.ServiceProcess("gateway", system, E2E_ENV)
    killed = process.read_pid(gateway.pidfile)
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    await asyncio.sleep(3)  # the couriers meet a gateway that is not there
    await asyncio.to_thread(gateway.await_restart, killed, 90.0)

    final = await wait_status(
        api, customer, order_id, "DELIVERED", "CANCELLED", timeout=DELIVERED_WITHIN_SECONDS
    )
    assert final["status"] == "DELIVERED"
    after = await place(api, customer, stocked_item)
    final = await wait_status(
        api, customer, after, "DELIVERED", "CANCELLED", timeout=DELIVERED_WITHIN_SECONDS
    )
    assert final["status"] == "DELIVERED"
    # The same simulator process all along: it waited, it did not crash.
    assert process.read_pid(simulator.pidfile) == sim_pid
    assert simulator.restart_record().restarts == restarts
    assert simulator.is_running()
    said = [line["message"] for line in _gateway_log_lines(simulator, log_from)]
    assert any("not answering" in m for m in said), said
    assert any("answers again" in m for m in said), said
