"""`foodflow bench` end to end: a few seconds at a low rate, and the books must balance."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from foodflow.gateway.services import DEMO_OPERATOR_EMAIL
from foodflow.platform.config import Settings
from foodflow.tools import processes
from foodflow.tools.bench.load import BENCH_ITEMS, remove_catalogue
from foodflow.tools.infra import process
from foodflow.tools.restore import read_environ

pytestmark = pytest.mark.e2e

# Long enough past the warm-up that orders complete inside the measured window on a busy
# machine (latency to CONFIRMED reached 2.6 s on 2 shared cores: 3 s left the window empty).
RATE, DURATION = 20, 6
ACCOUNTED_RUN = ("--rate", str(RATE), "--duration", str(DURATION), "--ceilings")


def assert_accounts_for_every_order(output: str, results: Path, rate: int, duration: int) -> None:
    """The run's report and its JSON: every order sent reached CONFIRMED, was persisted and
    verified in Redis, no error, latencies measured, ceilings and each process's CPU there."""
    for heading in ("sustained after warm-up", "p99.9", "order_manager", "PostgreSQL", "Kafka"):
        assert heading in output

    [result_file] = results.glob("bench-*.json")
    [plot_file] = results.glob("bench-*.png")
    assert plot_file.stat().st_size > 0
    data = json.loads(result_file.read_text())
    result = data["result"]
    assert result["sent"] == rate * duration
    assert sum(result["statuses"].values()) == result["sent"]
    assert result["statuses"].get("CONFIRMED") == result["sent"]
    assert result["persisted"] == result["sent"] == result["redis_verified"]
    assert result["accounted"] is True
    assert result["error_total"] == 0
    for latency in (result["latency_confirmed"], result["latency_persisted"]):
        assert latency["count"] == result["measured_orders"] > 0
        assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert data["ceilings"]["postgres"]["orders_per_s"] > 0
    assert data["ceilings"]["kafka"]["messages_per_s"] > 0
    assert {"order_manager", "order_writer", "bench", "kafka", "machine"} <= set(data["processes"])
    assert data["cpu_ms_per_order"] > 0
    assert data["cpu_ms_per_order_by_process"]["order_manager"] > 0
    assert data["machine"]["cpus"] >= 1


def bench_command(results: Path, *options: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "foodflow.cli",
        "bench",
        "--rate",
        "10",
        "--duration",
        "3",
        "--warmup",
        "1",
        "--no-ceilings",
        "--results",
        str(results),
        *options,
    ]


async def menu_ids(system: Settings) -> set[str]:
    """The public menu's item ids (the gateway's GET /menu)."""
    async with httpx.AsyncClient(base_url=system.service_url(system.gateway_port)) as client:
        response = await client.get("/menu", timeout=10.0)
    assert response.status_code == 200
    return {item["item_id"] for item in response.json()["items"]}


async def dashboard_stock_ids(system: Settings) -> set[str]:
    """The item ids of the dashboard's stock panel (GET /dashboard/stock, as the operator)."""
    assert system.demo_operator_password is not None
    credentials = {
        "email": DEMO_OPERATOR_EMAIL,
        "password": system.demo_operator_password.get_secret_value(),
    }
    async with httpx.AsyncClient(base_url=system.service_url(system.gateway_port)) as client:
        login = await client.post("/auth/login", json=credentials, timeout=10.0)
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        response = await client.get(
            "/dashboard/stock", headers={"Authorization": f"Bearer {token}"}, timeout=10.0
        )
    assert response.status_code == 200, response.text
    return {item["item_id"] for item in response.json()["items"]}


async def bench_items_in_catalogue(system: Settings) -> dict[str, bool]:
    """The bench items inventory holds, each with whether it is listed."""
    conn = await asyncpg.connect(system.postgres_dsn)
    try:
        rows = await conn.fetch(
            "SELECT item_id, listed FROM inventory_items WHERE item_id = ANY($1::text[])",
            list(BENCH_ITEMS),
        )
    finally:
        await conn.close()
    return {row["item_id"]: row["listed"] for row in rows}


def environ_of(system: Settings, service: str) -> tuple[int | None, dict[str, str] | None]:
    svc = processes.ServiceProcess(service, system)
    pid = process.read_pid(svc.pidfile)
    return pid, read_environ(pid)


async def test_bench_accounts_for_every_order_hides_its_items_and_puts_the_services_back(
    system: Settings, tmp_path: Path
) -> None:
    """The issue's `make run` then `bench`: every order accounted for (the report, the JSON);
    during the run the public menu shows no bench item; after it the items are gone and the
    services it restarted with PAYMENT_DELAY_SECONDS=0 run again with exactly the environment
    they had (a new process each). One run for all of it: a bench run costs the suite ~30 s."""
    before = {name: environ_of(system, name) for name in ("payment_service", "order_manager")}
    assert all(env is not None for _, env in before.values())
    log = tmp_path / "bench.log"  # a file, not a pipe: nothing waits for us to read it
    with log.open("wb") as out:
        bench = await asyncio.create_subprocess_exec(
            # --restart: the services restarted with its settings; the ceilings measured too
            *bench_command(tmp_path, *ACCOUNTED_RUN),
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 240
        while not await bench_items_in_catalogue(system):
            assert bench.returncode is None, "the bench ended before creating its items"
            assert time.monotonic() < deadline, "the bench created no item"
            await asyncio.sleep(0.2)
        during = environ_of(system, "payment_service")[1] or {}
        assert during.get("PAYMENT_DELAY_SECONDS") == "0"  # the bench's own setting
        items = await bench_items_in_catalogue(system)
        assert not any(items.values()), items  # unlisted
        assert not await menu_ids(system) & set(BENCH_ITEMS)
        async with asyncio.timeout(300):
            await bench.wait()
    finally:
        if bench.returncode is None:
            bench.kill()
            await bench.wait()
    output = log.read_text()
    assert bench.returncode == 0, output
    assert_accounts_for_every_order(output, tmp_path, RATE, DURATION)
    assert "settings they had before the bench" in output
    assert await bench_items_in_catalogue(system) == {}
    for name, (pid, env) in before.items():
        new_pid, new_env = environ_of(system, name)
        assert new_pid != pid, f"{name} was not restarted"
        assert new_env == env, f"{name} runs with other settings than before the bench"


async def test_bench_keep_leaves_its_items_unlisted(system: Settings, tmp_path: Path) -> None:
    bench = await asyncio.create_subprocess_exec(
        *bench_command(tmp_path, "--no-restart", "--keep"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(180):
        output = (await bench.communicate())[0].decode()
    assert bench.returncode == 0, output
    try:
        items = await bench_items_in_catalogue(system)
        assert set(items) == set(BENCH_ITEMS)
        assert not any(items.values())
        assert not await menu_ids(system) & set(BENCH_ITEMS)
        stock = await dashboard_stock_ids(system)
        assert "pho-bo" in stock and not stock & set(BENCH_ITEMS)
    finally:
        await remove_catalogue(system)


async def test_an_interrupted_bench_still_cleans_up_and_puts_the_services_back(
    system: Settings, tmp_path: Path
) -> None:
    """SIGTERM mid-run (a closed terminal, a CI timeout): the clean-up runs all the same."""
    pid, env = environ_of(system, "payment_service")
    log = tmp_path / "bench.log"
    with log.open("wb") as out:
        bench = await asyncio.create_subprocess_exec(
            *bench_command(tmp_path, "--duration", "120"),  # the later option wins
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 240
        while not await bench_items_in_catalogue(system):
            assert bench.returncode is None, log.read_text()
            assert time.monotonic() < deadline, "the bench created no item"
            await asyncio.sleep(0.2)
        await asyncio.sleep(2)  # sending
        bench.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        async with asyncio.timeout(240):
            await bench.wait()
        # It stops sending at once: what is left is the clean-up (the services' restarts), not
        # the rest of its 120 s (a sender thread that went on kept it waiting that long).
        assert time.monotonic() - signalled < 90, log.read_text()
    finally:
        if bench.returncode is None:
            bench.kill()
            await bench.wait()
    output = log.read_text()
    assert bench.returncode != 0, output  # it did not finish its run
    assert "settings they had before the bench" in output
    assert await bench_items_in_catalogue(system) == {}
    new_pid, new_env = environ_of(system, "payment_service")
    assert new_pid != pid
    assert new_env == env


def read_idle_result(results: Path) -> dict[str, Any]:
    [result_file] = results.glob("bench-idle-*.json")
    data: dict[str, Any] = json.loads(result_file.read_text())
    return data


async def test_bench_idle_measures_the_system_at_rest(system: Settings, tmp_path: Path) -> None:
    """`--idle`: each process's CPU with no order sent, and the whole machine's; nothing is
    restarted (the services keep their processes)."""
    pid, _ = environ_of(system, "order_manager")
    bench = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "foodflow.cli",
        "bench",
        "--idle",
        "--duration",
        "3",
        "--results",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(60):
        output = (await bench.communicate())[0].decode()
    assert bench.returncode == 0, output
    assert "the whole machine at rest" in output
    data = read_idle_result(tmp_path)
    assert data["mode"] == "idle"
    assert {"order_manager", "gateway", "kafka", "postgres", "machine"} <= set(data["processes"])
    assert data["processes"]["machine"]["cpu_avg_percent"] > 0
    assert environ_of(system, "order_manager")[0] == pid
