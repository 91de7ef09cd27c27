"""The order commands' exit codes against the running system: a script can tell an order that
went through from one that did not, and an unknown order from a slow one (issue 14)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from decimal import Decimal

import pytest

from foodflow.platform.config import Settings

pytestmark = pytest.mark.e2e


async def foodflow(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "foodflow", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )


async def test_an_order_that_fails_exits_1_and_one_that_goes_through_exits_0(
    system: Settings, test_item: tuple[str, Decimal]
) -> None:
    unknown = await foodflow("order", "send", "--item", f"no-such-{uuid.uuid4().hex[:8]}")
    assert unknown.returncode == 1, unknown.stdout + unknown.stderr
    assert "FAILED" in unknown.stdout and "UNKNOWN_ITEM" in unknown.stdout
    confirmed = await foodflow("order", "send", "--item", f"{test_item[0]}:1")
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    assert "CONFIRMED" in confirmed.stdout


async def test_watching_an_unknown_order_says_so(system: Settings) -> None:
    done = await foodflow("order", "watch", str(uuid.uuid4()))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "unknown order" in done.stdout
    assert "reached no final state" not in done.stdout


async def test_replaying_a_dead_letter_that_is_not_there_exits_1(system: Settings) -> None:
    done = await foodflow("dlq", "replay", "0:999999999")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no dead letter 0:999999999" in done.stdout
