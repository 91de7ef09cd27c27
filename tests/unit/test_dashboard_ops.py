"""The dashboard's operations figures: the pure parts (no servers)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from foodflow.contracts.orders import DeadLetter
from foodflow.gateway.feed import Contacts
from foodflow.gateway.ops import dead_letter_view, metric_value, restarts_of, skip_group
from foodflow.platform import metrics
from foodflow.platform.kafka.inspect import ParkedLetter
from foodflow.platform.supervision import RestartRecord, restart_record_path, restart_records

METRICS = """# HELP foodflow_event_loop_lag_recent_seconds The worst event-loop lag
# TYPE foodflow_event_loop_lag_recent_seconds gauge
foodflow_event_loop_lag_recent_seconds{service="gateway"} 0.002
foodflow_event_loop_lag_recent_seconds{service="order_manager"} 0.125
foodflow_event_loop_lag_recent_seconds_total{service="order_manager"} 9.0
process_start_time_seconds 1.7960000e+09
"""


def test_metric_values_are_read_by_name_and_service() -> None:
    name = "foodflow_event_loop_lag_recent_seconds"
    assert metric_value(METRICS, name, "order_manager") == 0.125
    assert metric_value(METRICS, name, "gateway") == 0.002
    assert metric_value(METRICS, name, "pricing_service") is None
    assert metric_value(METRICS, "process_start_time_seconds") == 1.796e9
    assert metric_value("garbage", name) is None


def test_only_the_empty_groups_of_stopped_gateways_are_left_out() -> None:
    assert skip_group("gateway-dashboard-0123456789ab", "EMPTY")
    assert not skip_group("gateway-dashboard-0123456789ab", "STABLE")
    assert not skip_group("order_manager", "EMPTY")


def test_restart_records_are_read_per_service_over_its_instances(tmp_path: Path) -> None:
    restart_record_path(tmp_path, "x").parent.mkdir(parents=True)
    RestartRecord(2, False, "killed by SIGKILL").save(
        restart_record_path(tmp_path, "order_manager")
    )
    RestartRecord(1, True, "exit 1").save(restart_record_path(tmp_path, "order_manager-1"))
    restart_record_path(tmp_path, "pricing_service").write_text("{not json")
    records = restart_records(tmp_path)
    merged = restarts_of("order_manager", records)
    assert merged is not None and (merged.restarts, merged.gave_up) == (3, True)
    assert merged.last_exit in ("killed by SIGKILL", "exit 1")
    assert restarts_of("pricing_service", records) == RestartRecord()
    assert restarts_of("gateway", records) is None
    assert restart_records(tmp_path / "nowhere") == {}


def test_a_dead_letter_is_shown_with_the_command_that_replays_it() -> None:
    letter = DeadLetter(
        source_topic="validated_orders",
        source_partition=1,
        source_offset=42,
        error="invalid order: " + "x" * 1000,
        payload="{}",
        failed_at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    view = dead_letter_view(ParkedLetter(2, 17, letter))
    assert view.ref == "2:17" and view.replay == "foodflow dlq replay 2:17"
    assert view.source == "validated_orders/1@42"
    assert len(view.error) <= 301 and view.error.endswith("…")


async def test_customers_are_looked_up_once_and_test_users_recognised() -> None:
    ann, tester = uuid.uuid4(), uuid.uuid4()
    asked: list[list[uuid.UUID]] = []

    async def lookup(ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[str, str]]:
        asked.append(ids)
        known = {ann: ("Ann", "ann@example.com"), tester: ("T", "test-1@example.com")}
        return {i: known[i] for i in ids if i in known}

    contacts = Contacts(lookup, size=10)
    await contacts.learn([str(ann), str(tester), "user-001", str(uuid.uuid4())])
    await contacts.learn([str(ann), "user-001"])  # known: no second query
    assert len(asked) == 1 and len(asked[0]) == 3  # "user-001" is no account id
    assert contacts.label(str(ann)) == "Ann <ann@example.com>"
    assert contacts.label("user-001") is None
    # A customer's email does not make their orders test traffic (hidden from operators).
    assert not contacts.is_test(str(tester)) and not contacts.is_test(str(ann))
    assert contacts.is_test("bench-user-7")


async def test_every_service_measures_its_event_loop_lag() -> None:
    """A loop blocked for 0.3 s shows as ~0.3 s of lag on the recent gauge."""
    metrics.ensure_event_loop_watch("unit-lag")
    metrics.ensure_event_loop_watch("unit-lag")  # once per loop and service
    await asyncio.sleep(0.12)
    time.sleep(0.3)  # noqa: ASYNC251 (the point: the loop is stuck)
    await asyncio.sleep(0.12)
    recent = metrics.EVENT_LOOP_LAG_RECENT.labels("unit-lag")._value.get()
    assert 0.2 < recent < 1.0
    watchers = [t for t in asyncio.all_tasks() if t.get_name() == "unit-lag loop lag"]
    assert len(watchers) == 1
    for task in watchers:
        task.cancel()
