"""Prometheus metrics every service shares: HTTP requests, consumer lag, and the `/metrics` route.

Metrics live in the process's default registry and carry a `service` label, so creating an app
twice in one process (tests do) registers nothing twice. A service with a registry of its own
(the order writer) passes it to `install_metrics` and both are exposed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from foodflow.platform.kafka.consumer import BatchConsumer

HTTP_REQUESTS = Counter(
    "foodflow_http_requests_total",
    "HTTP requests served, by route template and status code",
    ["service", "method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "foodflow_http_request_seconds",
    "Time to serve an HTTP request (until the response starts, for streams)",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HTTP_IN_PROGRESS = Gauge(
    "foodflow_http_requests_in_progress",
    "HTTP requests being served right now",
    ["service"],
)
CONSUMER_LAG = Gauge(
    "foodflow_consumer_lag",
    "Messages not yet consumed, per assigned partition (measured at scrape time)",
    ["service", "group", "topic", "partition"],
)

EVENT_LOOP_LAG = Histogram(
    "foodflow_event_loop_lag_seconds",
    "How late a 50 ms timer fires: the time every ready task waits for the loop",
    ["service"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


EVENT_LOOP_LAG_RECENT = Gauge(
    "foodflow_event_loop_lag_recent_seconds",
    "The worst event-loop lag of the last few seconds (what the dashboard shows)",
    ["service"],
)
# The recent gauge holds the worst of the current window and the one before: 5 to 10 s.
LAG_WINDOW_SECONDS = 5.0

# (loop, service) pairs already watched: the watch starts once per service and event loop,
# however many apps or requests ask for it.
_watched: set[tuple[int, str]] = set()


async def watch_event_loop_lag(service: str, interval: float = 0.05) -> None:
    """Record, forever, how much later than asked a sleep returns (a busy loop's queueing).

    Returns at once when this loop is already watched for `service`."""
    loop = asyncio.get_running_loop()
    key = (id(loop), service)
    if key in _watched:
        return
    _watched.add(key)
    lag = EVENT_LOOP_LAG.labels(service)
    recent = EVENT_LOOP_LAG_RECENT.labels(service)
    window_start, worst, previous_worst = loop.time(), 0.0, 0.0
    try:
        while True:
            start = loop.time()
            await asyncio.sleep(interval)
            now = loop.time()
            late = max(0.0, now - start - interval)
            lag.observe(late)
            if now - window_start >= LAG_WINDOW_SECONDS:
                window_start, previous_worst, worst = now, worst, 0.0
            worst = max(worst, late)
            recent.set(max(worst, previous_worst))
    finally:
        _watched.discard(key)


def ensure_event_loop_watch(service: str) -> None:
    """Start `watch_event_loop_lag(service)` on the running loop unless it runs already.

    Called by the HTTP metrics middleware on each request, so that every service measures
    its loop from its first request on (its readiness probe) with no code of its own."""
    loop = asyncio.get_running_loop()
    if (id(loop), service) in _watched:
        return
    task = loop.create_task(watch_event_loop_lag(service), name=f"{service} loop lag")
    _watch_tasks.add(task)
    task.add_done_callback(_watch_tasks.discard)


# Strong references: the loop keeps only weak ones to its tasks.
_watch_tasks: set[asyncio.Task[None]] = set()


# Paths that did not match a route are one label value, so a scanner cannot blow up the series.
UNMATCHED = "<unmatched>"

Collect = Callable[[FastAPI], Awaitable[None]]


class HttpMetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request by its route template."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ensure_event_loop_watch(self.service)
        started = time.perf_counter()
        status = 500
        timed = False
        in_progress = HTTP_IN_PROGRESS.labels(self.service)
        in_progress.inc()

        def observe() -> None:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            HTTP_REQUEST_SECONDS.labels(self.service, scope["method"], template).observe(
                time.perf_counter() - started
            )

        async def send_wrapper(message: Message) -> None:
            nonlocal status, timed
            if message["type"] == "http.response.start":
                status = message["status"]
                # Streams (SSE) stay open for minutes: their latency is the time to the headers.
                observe()
                timed = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            in_progress.dec()
            if not timed:
                observe()
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            HTTP_REQUESTS.labels(self.service, scope["method"], template, str(status)).inc()


async def record_consumer_lag(service: str, consumer: BatchConsumer) -> None:
    """Set `foodflow_consumer_lag` for each partition `consumer` is assigned right now."""
    for (topic, partition), lag in (await consumer.lag()).items():
        CONSUMER_LAG.labels(service, consumer.group_id, topic, str(partition)).set(lag)


def install_metrics(
    app: FastAPI,
    service: str,
    *,
    collect: Collect | None = None,
    registries: Sequence[CollectorRegistry] = (),
) -> None:
    """Add the HTTP metrics middleware and `GET /metrics` to `app`.

    `collect(app)` runs before each scrape, for gauges measured on demand (lag, stock levels);
    it must not fail the scrape, so its errors are swallowed.
    """
    app.add_middleware(HttpMetricsMiddleware, service=service)

    async def metrics(request: Request) -> Response:
        """Prometheus metrics of this process (text exposition format)."""
        if collect is not None:
            # A scrape must answer even when a gauge cannot be measured right now.
            with contextlib.suppress(Exception):
                await collect(request.app)
        body = b"".join(generate_latest(r) for r in (REGISTRY, *registries))
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    # Prometheus text, not JSON: an operator endpoint, kept out of the API schema.
    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
