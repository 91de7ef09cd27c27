"""`foodflow bench` end to end: a few seconds at a low rate, and the books must balance."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from foodflow.platform.config import Settings

pytestmark = pytest.mark.e2e

RATE, DURATION = 20, 3


def test_bench_accounts_for_every_order(system: Settings, tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "foodflow.cli",
            "bench",
            "--rate",
            str(RATE),
            "--duration",
            str(DURATION),
            "--warmup",
            "1",
            "--no-restart",  # the session's services, as they run: no restart for the others
            "--results",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for heading in ("sustained after warm-up", "p99.9", "order_manager", "PostgreSQL", "Kafka"):
        assert heading in run.stdout

    [result_file] = tmp_path.glob("bench-*.json")
    [plot_file] = tmp_path.glob("bench-*.png")
    assert plot_file.stat().st_size > 0
    data = json.loads(result_file.read_text())
    result = data["result"]
    assert result["sent"] == RATE * DURATION
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
    assert data["machine"]["cpus"] >= 1
