"""The dashboard's operations figures: consumer lag, dead letters, service health, stored counts.

One `OpsRefresher` per gateway process measures them every `DASHBOARD_REFRESH_SECONDS` and
keeps the last report; viewers only ever read that report (over the event stream or
`GET /dashboard/ops`), so a hundred open dashboards cost Kafka, PostgreSQL and the services
what one does. A measurement that fails or is slow leaves the rest of the report fresh, says
what failed, and never holds the page: each part has its own time limit, and a part still
running when the next refresh comes is not started twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
from pydantic import BaseModel

from foodflow.gateway.board import Board, counts_of
from foodflow.orders.activity import counts_by_status
from foodflow.platform.config import PORT_SETTING, Settings
from foodflow.platform.kafka.inspect import GroupLag, KafkaInspector, ParkedLetter
from foodflow.platform.supervision import RestartRecord, restart_records

log = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 2.0
KAFKA_TIMEOUT_SECONDS = 8.0
LATEST_DEAD_LETTERS = 5
MAX_ERROR_CHARS = 300
# The gateway's own dashboard feeds join a group of their own per process; the groups of
# stopped gateways stay behind, empty, until Kafka expires them: not worth a row each.
EPHEMERAL_GROUP_PREFIX = "gateway-dashboard-"
LOOP_LAG_METRIC = "foodflow_event_loop_lag_recent_seconds"
START_TIME_METRIC = "process_start_time_seconds"


class GroupLagView(BaseModel):
    group_id: str
    state: str
    members: int
    lag: int
    by_topic: dict[str, int]


class DeadLetterView(BaseModel):
    ref: str
    failed_at: datetime
    source: str
    order_id: str | None
    error: str
    # What an operator copies to send the message again once its cause is fixed.
    replay: str


class ServiceHealth(BaseModel):
    service: str
    ready: bool
    checks: dict[str, bool]
    # From the supervisor's record (None when the service is not run by `foodflow up`).
    restarts: int | None
    gave_up: bool
    last_exit: str | None
    event_loop_lag_seconds: float | None
    uptime_seconds: float | None


class OpsReport(BaseModel):
    measured_at: datetime | None
    kafka_reachable: bool | None
    groups: list[GroupLagView]
    total_lag: int | None
    dead_letters: int | None
    latest_dead_letters: list[DeadLetterView]
    services: list[ServiceHealth]
    problems: list[str]


def empty_report() -> OpsReport:
    return OpsReport(
        measured_at=None,
        kafka_reachable=None,
        groups=[],
        total_lag=None,
        dead_letters=None,
        latest_dead_letters=[],
        services=[],
        problems=["not measured yet"],
    )


def skip_group(group_id: str, state: str) -> bool:
    """Leave out the empty groups of gateways that stopped (see EPHEMERAL_GROUP_PREFIX)."""
    return group_id.startswith(EPHEMERAL_GROUP_PREFIX) and state in ("EMPTY", "DEAD")


def dead_letter_view(parked: ParkedLetter) -> DeadLetterView:
    letter = parked.letter
    error = letter.error
    return DeadLetterView(
        ref=parked.ref,
        failed_at=letter.failed_at,
        source=f"{letter.source_topic}/{letter.source_partition}@{letter.source_offset}",
        order_id=str(letter.order_id) if letter.order_id else None,
        error=error if len(error) <= MAX_ERROR_CHARS else error[:MAX_ERROR_CHARS] + "…",
        replay=f"foodflow dlq replay {parked.ref}",
    )


def metric_value(text: str, name: str, service: str | None = None) -> float | None:
    """The value of the first sample of `name` (with `service="…"` among its labels, when
    given) in Prometheus' text format; None when there is none."""
    label = f'service="{service}"' if service else None
    for line in text.splitlines():
        if not line.startswith(name) or line[len(name) : len(name) + 1] not in ("{", " "):
            continue
        if label is not None and label not in line:
            continue
        try:
            return float(line.rsplit(" ", 1)[1])
        except (IndexError, ValueError):
            return None
    return None


def service_urls(settings: Settings) -> dict[str, str]:
    """Where each service answers (the first instance of each)."""
    overrides = {
        "inventory_service": settings.inventory_url,
        "pricing_service": settings.pricing_url,
        "payment_service": settings.payment_url,
        "delivery_service": settings.delivery_url,
        "restaurant_service": settings.restaurant_url,
    }
    return {
        name: overrides.get(name) or settings.service_url(getattr(settings, port))
        for name, port in PORT_SETTING.items()
    }


def restarts_of(service: str, records: dict[str, RestartRecord]) -> RestartRecord | None:
    """The restarts of every instance of `service` (`order_manager`, `order_manager-1`, …)."""
    mine = [r for name, r in records.items() if name == service or name.startswith(service + "-")]
    if not mine:
        return None
    last = next((r.last_exit for r in mine if r.last_exit), "")
    return RestartRecord(
        restarts=sum(r.restarts for r in mine),
        gave_up=any(r.gave_up for r in mine),
        last_exit=last,
    )


class OpsRefresher:
    """Measures the operations figures periodically; `report` is the last measurement."""

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        board: Board,
        publish: Callable[[str, Any], None],
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.board = board
        self.publish = publish
        self.report = empty_report()
        self._inspector: KafkaInspector | None = None
        self._session: aiohttp.ClientSession | None = None
        self._kafka: asyncio.Task[tuple[list[GroupLag], Any]] | None = None
        self._kafka_result: tuple[list[GroupLagView], int | None, list[DeadLetterView]] = (
            [],
            None,
            [],
        )
        self._kafka_ok: bool | None = None

    async def refresh(self) -> None:
        """Measure every part (each within its own time limit), then publish the report."""
        problems: list[str] = []
        _, services, _ = await asyncio.gather(
            self._refresh_kafka(problems), self._health(), self._counts(problems)
        )
        groups, dead, latest = self._kafka_result
        for health in services:
            if not health.ready:
                problems.append(f"{health.service} is not ready")
        self.report = OpsReport(
            measured_at=datetime.now(UTC),
            kafka_reachable=self._kafka_ok,
            groups=groups,
            total_lag=sum(g.lag for g in groups) if self._kafka_ok else None,
            dead_letters=dead,
            latest_dead_letters=latest,
            services=services,
            problems=problems,
        )
        self.publish("ops", self.report.model_dump(mode="json"))

    async def close(self) -> None:
        if self._kafka is not None:
            self._kafka.cancel()
        if self._session is not None:
            await self._session.close()
        if self._inspector is not None:
            await asyncio.to_thread(self._inspector.close)

    # --- parts ---------------------------------------------------------------------------------

    async def _refresh_kafka(self, problems: list[str]) -> None:
        """Lag and dead letters, from the inspector's thread; a measurement still running from
        the last refresh (Kafka slow or down) is waited for, never started twice."""
        if self._inspector is None:
            self._inspector = KafkaInspector(self.settings, timeout=KAFKA_TIMEOUT_SECONDS / 2)
        inspector = self._inspector
        if self._kafka is None or self._kafka.done():

            async def measure() -> tuple[list[GroupLag], Any]:
                lags = await inspector.run(lambda: inspector.group_lags(skip_group))
                letters = await inspector.run(lambda: inspector.dead_letters(LATEST_DEAD_LETTERS))
                return lags, letters

            self._kafka = asyncio.ensure_future(measure())
        try:
            lags, letters = await asyncio.wait_for(
                asyncio.shield(self._kafka), KAFKA_TIMEOUT_SECONDS
            )
        except TimeoutError:
            self._kafka_ok = False
            problems.append("Kafka did not answer in time")
            return
        except Exception as exc:  # a broker down must not end the refresher
            self._kafka_ok = False
            self._kafka = None
            log.warning("Kafka figures unavailable: %s", exc)
            problems.append("Kafka is unavailable")
            return
        self._kafka_ok = True
        self._kafka_result = (
            [GroupLagView(**vars(g)) for g in lags],
            letters.count,
            [dead_letter_view(p) for p in letters.latest],
        )

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_SECONDS, sock_connect=1.0)
            )
        return self._session

    async def _health(self) -> list[ServiceHealth]:
        records = await asyncio.to_thread(restart_records, self.settings.state_dir)
        urls = service_urls(self.settings)
        return list(
            await asyncio.gather(
                *(self._probe(name, url, restarts_of(name, records)) for name, url in urls.items())
            )
        )

    async def _probe(self, service: str, url: str, record: RestartRecord | None) -> ServiceHealth:
        ready, checks = False, {}
        lag = uptime = None
        try:
            async with self._http().get(url + "/ready") as response:
                body = await response.json(content_type=None)
                ready = response.status == 200
                if isinstance(body, dict) and isinstance(body.get("checks"), dict):
                    checks = {str(k): bool(v) for k, v in body["checks"].items()}
            async with self._http().get(url + "/metrics") as response:
                text = await response.text()
            lag = metric_value(text, LOOP_LAG_METRIC, service)
            started = metric_value(text, START_TIME_METRIC)
            uptime = max(0.0, time.time() - started) if started else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.debug("Probing %s failed: %s", service, exc)
        return ServiceHealth(
            service=service,
            ready=ready,
            checks=checks,
            restarts=record.restarts if record else None,
            gave_up=record.gave_up if record else False,
            last_exit=record.last_exit or None if record else None,
            event_loop_lag_seconds=lag,
            uptime_seconds=uptime,
        )

    async def _counts(self, problems: list[str]) -> None:
        try:
            self.board.stored_counts = counts_of(await counts_by_status(self.pool))
        except Exception as exc:  # PostgreSQL down or slow: the last counts stay shown
            log.warning("Order counts unavailable: %s", exc)
            problems.append("PostgreSQL could not count the orders")
