"""The command line with the system down or given a bad value: one line and a hint, an exit
code that says so, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ORDER_ID = "6f1f5b8e-3c1a-4d0e-9a51-0f00df10f10a"


def foodflow(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "foodflow", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", **env},
        check=False,
    )


def test_an_unreachable_redis_is_a_hint_and_exit_2() -> None:
    # Port 1: nothing listens there, the connection is refused at once.
    done = foodflow("order", "status", ORDER_ID, REDIS_PORT="1", POSTGRES_PORT="1")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "cannot reach a server foodflow needs" in done.stdout
    assert "foodflow up" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_a_bad_quantity_is_a_usage_error() -> None:
    done = foodflow("customer", "order", "--item", "pho-bo:abc")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "expected ITEM_ID[:QUANTITY]" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_status_says_in_its_exit_code_when_something_is_down(tmp_path: Path) -> None:
    done = foodflow("status", FOODFLOW_STATE_DIR=str(tmp_path))  # a state where nothing runs
    assert done.returncode == 1, done.stdout + done.stderr


def test_replaying_a_malformed_dead_letter_ref_is_a_usage_error() -> None:
    # It used to say "replayed 0 of 0" and exit 0: a typo looked like success.
    done = foodflow("dlq", "replay", "abc")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "expected PARTITION:OFFSET" in done.stdout + done.stderr
