"""The order commands' exit codes and --json output against the running system: a script can
tell an order that went through from one that did not, an unknown order from a slow one, and
read one JSON document from stdout (issue 14)."""

from __future__ import annotations

import asyncio
import json
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
    assert "unknown order" in done.stderr
    assert "reached no final state" not in done.stdout + done.stderr


async def test_replaying_a_dead_letter_that_is_not_there_exits_1(system: Settings) -> None:
    done = await foodflow("dlq", "replay", "0:999999999")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no dead letter 0:999999999" in done.stderr


async def test_order_status_json_is_the_one_document_on_stdout(
    system: Settings, test_item: tuple[str, Decimal]
) -> None:
    sent = await foodflow("order", "send", "--item", f"{test_item[0]}:2")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    order_id = sent.stdout.split("sent order ", 1)[1].split()[0]
    done = await foodflow("order", "status", order_id, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    status = json.loads(done.stdout)  # the whole of stdout: nothing printed around it
    assert status["order_id"] == order_id
    assert status["status"] == "CONFIRMED"
    assert Decimal(status["price"]["subtotal"]) == 2 * test_item[1]
    unknown = await foodflow("order", "status", str(uuid.uuid4()), "--json")
    assert unknown.returncode == 1, unknown.stdout + unknown.stderr
    assert unknown.stdout == ""
    assert "no order" in unknown.stderr


async def test_status_json_says_everything_is_up(system: Settings) -> None:
    done = await foodflow("status", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["up"] is True
    running = {c["name"] for c in report["components"] if c["running"]}
    assert {"kafka", "postgres", "redis", "gateway", "order_manager"} <= running


CUSTOMER = (
    *("--email", f"test-cli-{uuid.uuid4().hex[:8]}@example.com"),
    *("--password", f"test cli {uuid.uuid4().hex}"),
)


async def test_a_customer_order_declined_exits_1_and_show_json_tells_why(
    system: Settings, test_item: tuple[str, Decimal]
) -> None:
    item = f"{test_item[0]}:1"
    declined = await foodflow(
        "customer", "order", "--item", item, "--card", "tok_declined", *CUSTOMER
    )
    assert declined.returncode == 1, declined.stdout + declined.stderr
    assert "FAILED" in declined.stderr
    order_id = declined.stdout.split("order ", 1)[1].split()[0]
    shown = await foodflow("customer", "show", order_id, "--json", *CUSTOMER)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    order = json.loads(shown.stdout)
    assert order["order_id"] == order_id
    assert order["status"] == "FAILED"
    assert [change["status"] for change in order["timeline"]][-1] == "FAILED"


async def test_a_refusal_of_the_gateway_is_its_problem_in_one_line_and_exit_1(
    system: Settings,
) -> None:
    missing = str(uuid.uuid4())
    done = await foodflow("customer", "show", missing, "--json", *CUSTOMER)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr.strip().startswith("404"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    refused = await foodflow("customer", "order", "--item", "pho-bo:0", *CUSTOMER)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "quantity" in refused.stderr
    assert "Traceback" not in done.stderr + refused.stderr


async def test_usage_errors_exit_2_with_the_system_up(system: Settings) -> None:
    bad_quantity = await foodflow("customer", "order", "--item", "pho-bo:abc", *CUSTOMER)
    assert bad_quantity.returncode == 2, bad_quantity.stdout + bad_quantity.stderr
    zero = await foodflow("order", "send", "--item", "pho-bo:0")
    assert zero.returncode == 2, zero.stdout + zero.stderr
    assert "quantity:" in zero.stderr
    not_an_id = await foodflow("order", "status", "not-an-order-id")
    assert not_an_id.returncode == 2, not_an_id.stdout + not_an_id.stderr
    for done in (bad_quantity, zero, not_an_id):
        assert "Traceback" not in done.stdout + done.stderr
