"""`/health`, `/ready` and `/metrics`, the same on every service.

`/health` is liveness: the process answers (200 while the event loop turns). `/ready` checks
every real dependency the service has — each check an awaitable answering True or False within
a bound — and answers one body shape everywhere:

    {"status": "ready" | "unavailable", "checks": {"postgres": true, "consumer": true, ...}}

with 200 when every check passes and 503 otherwise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

import asyncpg
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from foodflow.platform.db.pool import database_ready
from foodflow.platform.gate import DependencyGate, GateState
from foodflow.platform.http.client import ServiceClient
from foodflow.platform.metrics import Collect, install_metrics

log = logging.getLogger(__name__)

Check = Callable[[Request], Awaitable[bool]]
CHECK_TIMEOUT_SECONDS = 2.0


def postgres_check(pool_of: Callable[[Request], asyncpg.Pool]) -> Check:
    """Ready when PostgreSQL answers `SELECT 1` on the service's pool."""

    async def check(request: Request) -> bool:
        return await database_ready(pool_of(request))

    return check


def redis_check(client_of: Callable[[Request], aioredis.Redis]) -> Check:
    """Ready when Redis answers PING."""

    async def check(request: Request) -> bool:
        return bool(await client_of(request).ping())

    return check


def gate_check(
    gate: DependencyGate, client_of: Callable[[Request], ServiceClient] | None = None
) -> Check:
    """Ready while the dependency's gate is closed and, for a called service (`client_of`),
    while it answers its liveness probe: a service killed while no call goes to it is seen."""

    async def check(request: Request) -> bool:
        if gate.state is not GateState.CLOSED:
            return False
        return client_of is None or await client_of(request).reachable()

    return check


def running_check(running: Callable[[Request], bool]) -> Check:
    """Ready while a background loop (a Kafka consumer, a sweeper) runs."""

    async def check(request: Request) -> bool:
        return running(request)

    return check


async def _passes(name: str, check: Check, request: Request) -> bool:
    try:
        return await asyncio.wait_for(check(request), CHECK_TIMEOUT_SECONDS)
    except Exception as exc:  # a failing dependency makes the service unready, not crashed
        log.warning("Readiness check %s failed: %s", name, exc)
        return False


def install_probes(
    app: FastAPI,
    service: str,
    checks: Mapping[str, Check],
    *,
    collect: Collect | None = None,
    registries: Sequence[CollectorRegistry] = (),
) -> None:
    """Add `/health`, `/ready` (over `checks`) and `/metrics` (see `install_metrics`) to `app`."""

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        """Liveness: the process is up and serving HTTP."""
        return {"status": "ok"}

    # Not a problem (`ERROR_RESPONSES`): the same body as the 200, which says what failed.
    not_ready = {"description": "A dependency is not ready.", "content": {"application/json": {}}}

    @app.get("/ready", tags=["ops"], responses={503: not_ready})
    async def ready(request: Request) -> JSONResponse:
        """Readiness: every dependency of this service answers; 503 otherwise."""
        names = list(checks)
        results = await asyncio.gather(*(_passes(n, checks[n], request) for n in names))
        passed = dict(zip(names, results, strict=True))
        ok = all(results)
        return JSONResponse(
            {"status": "ready" if ok else "unavailable", "checks": passed},
            status_code=200 if ok else 503,
        )

    install_metrics(app, service, collect=collect, registries=registries)
