"""Chaos waits for recovery: looks again and again, reconnects to PostgreSQL, gives up in time."""

from __future__ import annotations

from typing import Any

import pytest

from foodflow.platform.config import Settings
from foodflow.tools.chaos import checks, runner
from foodflow.tools.chaos.runner import ChaosConfig, ChaosRun


class FakeConnection:
    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[FakeConnection]:
    made: list[FakeConnection] = []

    async def connect(dsn: str, attempts: int = 30) -> FakeConnection:
        made.append(FakeConnection())
        return made[-1]

    monkeypatch.setattr(runner, "connect_retrying", connect)
    monkeypatch.setattr(runner, "RECOVERY_CHECK_SECONDS", 0.01)
    return made


def observed() -> checks.Observed:
    return checks.Observed(
        expected={"o1": {"item": 1}},
        expected_invalid=set(),
        final_statuses=frozenset({"CONFIRMED", "FAILED"}),
        initial_stock={"item": 5},
    )


def chaos(recover_timeout: float, looks: list[str]) -> ChaosRun:
    """A run whose store reads go by `looks`: "down" fails, "busy" is not final, "done" is."""

    async def read_stores(conn: Any, rds: Any, o: checks.Observed) -> None:
        look = looks.pop(0) if looks else "busy"
        if look == "down":
            raise ConnectionRefusedError("PostgreSQL is restarting")
        status = "CONFIRMED" if look == "done" else "PROCESSING"
        o.postgres = o.redis = {"o1": status}
        o.current_stock = {"item": 4 if look == "done" else 5}

    run = ChaosRun(Settings(), ChaosConfig(recover_timeout=recover_timeout), lambda *a: None)
    run.read_stores = read_stores  # type: ignore[method-assign]
    return run


async def test_recovery_is_the_first_look_that_finds_everything_final(
    connections: list[FakeConnection],
) -> None:
    run = chaos(10, ["down", "busy", "done"])
    assert await run.wait_for_recovery(observed()) is not None
    assert len(connections) == 2  # reconnected after the failed read
    assert all(c.closed for c in connections)


async def test_no_recovery_within_the_timeout_is_none(connections: list[FakeConnection]) -> None:
    assert await chaos(0.2, []).wait_for_recovery(observed()) is None
    assert all(c.closed for c in connections)
