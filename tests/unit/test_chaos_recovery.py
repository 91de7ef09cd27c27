"""Chaos waits for recovery (looks again and again, reconnects to PostgreSQL, gives up in time),
and the checks its faults add, as pure functions over what a run observed."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from foodflow.platform.config import Settings
from foodflow.tools.chaos import checks, faults, runner
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
        o.postgres = o.state = {"o1": status}
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


# --- the checks a fault adds: pure functions over what a run observed ---------------------------


def orders_observed(**fields: Any) -> checks.Observed:
    o = checks.Observed(
        expected={},
        expected_invalid=set(),
        final_statuses=frozenset({"CONFIRMED", "FAILED", "CANCELLED"}),
    )
    for name, value in fields.items():
        setattr(o, name, value)
    o.expected = {oid: {"item": 1} for oid in o.postgres | o.sent_at | o.charges}
    return o


def test_a_flushed_cache_is_neither_lost_nor_inconsistent_but_a_contradiction_is() -> None:
    o = orders_observed(
        postgres={"kept": "CONFIRMED", "flushed": "CONFIRMED", "wrong": "CONFIRMED"},
        state={"kept": "CONFIRMED", "flushed": "CONFIRMED", "wrong": "CONFIRMED"},
        cache={"kept": "CONFIRMED", "wrong": "FAILED"},
        events={
            oid: [(1, "RECEIVED", None), (2, "CONFIRMED", None)]
            for oid in ("kept", "flushed", "wrong")
        },
    )
    assert checks.lost(o) == []
    assert checks.inconsistent(o) == ["wrong"]
    o.cache["flushed"] = "PROCESSING"
    assert checks.stuck(o) == ["flushed"]
    del o.state["kept"]  # the truth of the current state must hold every order
    assert checks.lost(o) == ["kept"]


def test_charged_but_not_persisted() -> None:
    o = orders_observed(
        postgres={
            "paid": "CONFIRMED",
            "short": "CONFIRMED",
            "free": "CONFIRMED",
            "failed-paid": "FAILED",
            "refunded": "CANCELLED",
            "failed": "FAILED",
            "running": "PROCESSING",
        },
        totals={"paid": 1015, "short": 1015, "free": 1015, "refunded": 500},
        charges={
            "paid": 1015,
            "short": 1000,
            "failed-paid": 1015,
            "refunded": 0,
            "no-row": 2030,
            "running": 700,
        },
    )
    assert checks.charged_not_persisted(o) == ["failed-paid", "free", "no-row", "short"]


def test_failed_by_a_fault_shorter_than_the_grace() -> None:
    short, long = checks.Window(100, 110), checks.Window(200, 290)
    o = orders_observed(
        postgres={n: "FAILED" for n in ("short", "long", "both", "stock", "calm")}
        | {"ok": "CONFIRMED"},
        reasons={
            "short": "PAYMENT_UNAVAILABLE",
            "long": "INVENTORY_UNAVAILABLE",
            "both": "TIMED_OUT",
            "stock": "OUT_OF_STOCK",
            "calm": "PRICING_UNAVAILABLE",
        },
        sent_at={"short": 105, "long": 250, "both": 108, "stock": 105, "calm": 150, "ok": 105},
        final_at={"short": 106, "long": 251, "both": 205, "stock": 106, "calm": 151, "ok": 106},
    )
    assert checks.failed_by_short_fault(o, [short, long], grace=60) == ["short"]
    assert checks.failed_by_short_fault(o, [short, long], grace=5) == []


def flow(
    start: float, end: float, every: float, latency: float
) -> dict[str, tuple[float, float | None]]:
    """Orders sent every `every` s from `start` to `end`, each final `latency` s later."""
    count = int((end - start) / every)
    return {f"o{n}": (start + n * every, start + n * every + latency) for n in range(count)}


def stalled(
    orders: dict[str, tuple[float, float | None]], partitions: dict[str, int]
) -> checks.Observed:
    return orders_observed(
        sent_at={oid: sent for oid, (sent, _) in orders.items()},
        final_at={oid: final for oid, (_, final) in orders.items() if final is not None},
        partitions=partitions,
    )


def longest_stall(o: checks.Observed, since: float, until: float) -> float:
    return max((w.seconds for w in checks.stall_segments(o, since, until)), default=0.0)


def test_orders_that_keep_finishing_stall_no_longer_than_each_one_takes() -> None:
    o = stalled(flow(0, 60, 0.5, 0.2), {})
    assert longest_stall(o, 10, 50) == pytest.approx(0.2)


def test_a_stall_runs_from_the_fault_until_orders_finish_again() -> None:
    orders = flow(0, 60, 0.5, 0.2)
    # Everything sent from 20 s on waits until 38 s, then finishes.
    orders |= {o: (sent, max(sent + 0.2, 38.0)) for o, (sent, _) in orders.items() if sent >= 20}
    o = stalled(orders, {})
    assert longest_stall(o, 20, 60) == pytest.approx(18.0, abs=0.3)
    assert longest_stall(o, 45, 60) == pytest.approx(0.2)


def test_a_wedged_partition_shows_while_the_others_flow() -> None:
    busy = {f"a{k}": v for k, v in flow(0, 60, 0.5, 0.2).items()}
    wedged = {f"b{k}": (sent, None) for k, (sent, _) in flow(30, 40, 1, 0).items()}
    partitions = dict.fromkeys(busy, 0) | dict.fromkeys(wedged, 1)
    o = stalled(busy | wedged, partitions)
    # Never finished: the stall lasts until the end of what was observed.
    assert longest_stall(o, 25, 70) == pytest.approx(40.0)
    assert longest_stall(stalled(busy, {}), 25, 70) == pytest.approx(0.2)


def test_nothing_waiting_is_no_stall() -> None:
    o = stalled(flow(0, 10, 0.5, 0.2), {})
    assert longest_stall(o, 20, 80) == 0.0
    assert longest_stall(stalled({}, {}), 0, 10) == 0.0


def test_every_bad_message_dead_lettered_once() -> None:
    bad = [("validated_orders", 0, 5), ("validated_orders", 1, 7), ("validated_orders", 2, 9)]
    letters = [
        ("validated_orders", 0, 5),
        ("validated_orders", 1, 7),
        ("validated_orders", 1, 7),
        ("validated_orders", 1, 7),
        ("db_write_order_status", 0, 5),  # another consumer's letter: not ours to count
    ]
    assert checks.not_dead_lettered(bad, letters) == ["validated_orders/2@9"]
    assert checks.repeated_letters(bad, letters) == 2
    assert checks.repeated_letters(bad, []) == 0


def report(**fields: Any) -> runner.ChaosReport:
    base = runner.ChaosReport(
        sent=10,
        invalid_sent=0,
        outcomes={"CONFIRMED": 10},
        lost=[],
        duplicated=[],
        stuck=[],
        inconsistent=[],
        invalid_not_failed=[],
        stock_drift={},
        dead_letters=0,
        faults=[],
        recover_seconds=1.0,
        duration_seconds=10.0,
    )
    for name, value in fields.items():
        setattr(base, name, value)
    return base


def test_the_new_checks_decide_the_verdict() -> None:
    assert report().passed
    assert not report(charged_not_persisted=["o1"]).passed
    assert not report(failed_by_short_fault=["o1"]).passed
    assert not report(not_dead_lettered=["validated_orders/0@1"]).passed
    assert not report(stalls=[("#1 SIGKILL order_manager", 15.5)]).passed
    assert report(stalls=[("#1 SIGKILL order_manager", 15.0)]).passed
    # A repeated dead letter is excused by a crash between its publishing and its commit only.
    assert not report(repeated_letters=1).passed
    assert report(repeated_letters=1, crashes=1).passed
    assert not report(courier_for_rejected=["o1"]).passed
    assert not report(refunded_twice=["o1"]).passed


def test_an_order_to_deliver_is_done_only_when_terminal() -> None:
    kitchen = ["CONFIRMED", "RESTAURANT_ACCEPTED", "PREPARING", "READY_FOR_PICKUP"]
    o = orders_observed(
        final_statuses=frozenset(
            {*kitchen, "COURIER_ASSIGNED", "DELIVERED", "FAILED", "CANCELLED"}
        ),
        postgres={"seed": "CONFIRMED", "cooking": "PREPARING", "delivered": "DELIVERED"},
        state={"seed": "CONFIRMED", "cooking": "PREPARING", "delivered": "DELIVERED"},
        to_deliver={"cooking", "delivered"},
    )
    # The seed's order (no address) ends CONFIRMED; one to deliver is not done while cooking.
    assert checks.lost(o) == ["cooking"]
    assert checks.stuck(o) == ["cooking"]
    o.postgres["cooking"] = o.state["cooking"] = "CANCELLED"
    assert checks.lost(o) == [] and checks.stuck(o) == []


def test_a_courier_for_a_rejected_order_and_a_second_refund_are_caught() -> None:
    o = orders_observed(
        events={
            "rejected": [(3, "CONFIRMED", None), (4, "RESTAURANT_REJECTED", "KITCHEN_BUSY")],
            "sent": [(4, "RESTAURANT_REJECTED", "KITCHEN_BUSY"), (5, "COURIER_ASSIGNED", None)],
            "delivered": [(4, "RESTAURANT_ACCEPTED", None), (5, "COURIER_ASSIGNED", None)],
        },
        refunds={"rejected": 1, "twice": 2},
    )
    assert checks.courier_for_rejected(o) == ["sent"]
    assert checks.refunded_twice(o) == ["twice"]


def test_each_poison_message_is_what_its_name_says() -> None:
    big = faults.poison_message("big", "item", "t")
    assert len(big.value) == faults.BIG_POISON_BYTES
    assert big.value.endswith(b'"}')
    assert orjson.loads(big.value)["items"] == [{"item_id": "item", "quantity": 1}]
    nul = faults.poison_message("nul-user", "item", "t")
    assert nul.order_id is not None
    assert "\x00" in orjson.loads(nul.value)["user_id"]
    assert faults.poison_message("nuls", "item", "t").value == b"\x00" * faults.NUL_POISON_BYTES
    assert (
        len(orjson.loads(faults.poison_message("many-items", "item", "t").value)["items"]) == 10_000
    )
    with pytest.raises(ValueError):
        faults.poison_message("bad", "item", "t")


def test_outages_are_spread_over_the_window_and_unknown_targets_refused() -> None:
    cfg = ChaosConfig(
        kills_per_service=0,
        restart_infra=False,
        flushall=False,
        poison=(),
        kill2=False,
        outages=("payment_service", "postgres"),
        outage_seconds=10,
    )
    planned = runner.plan_faults(cfg, 100.0, random.Random(1))
    assert [(f.at, f.kind, f.target, f.seconds) for f in planned] == [
        (25.0, "outage", "payment_service", 10),
        (75.0, "outage", "postgres", 10),
    ]
    with pytest.raises(ValueError):
        runner.plan_faults(ChaosConfig(outages=("kafka-ish",)), 100.0, random.Random(1))


def test_a_fault_stalls_from_its_moment_and_an_outage_from_its_end() -> None:
    kill = faults.FaultRecord(faults.Fault(1, "kill", "order_manager"), 100.0, 104.0)
    down = faults.FaultRecord(faults.Fault(1, "outage", "redis", 30), 100.0, 131.0)
    assert (kill.stall_from, down.stall_from) == (100.0, 131.0)


def test_each_stall_belongs_to_the_latest_fault_before_it_and_outages_are_waited_out() -> None:
    segments = [
        checks.Window(100, 104),  # after a kill at 100 and before a poison at 102: split
        checks.Window(120, 170),  # during an outage from 110 to 160: only 160..170 counts
        checks.Window(199, 230),  # starts just before a flush at 200: 200..230 is the flush's
    ]
    moments = [100, 102, 160, 200]  # kill, poison, end of the outage, flush
    away = [checks.Window(110, 160)]
    assert checks.stalls_after(segments, moments, away) == [2, 2, 10, 30]
    assert checks.stalls_after([checks.Window(10, 50)], moments, away) == [0, 0, 0, 0]
