"""`/health` and `/ready` for the services whose one dependency is PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
from fastapi import APIRouter, Request, Response, status

from foodflow.db.pool import database_ready


def database_health_router(pool_of: Callable[[Request], asyncpg.Pool]) -> APIRouter:
    """Liveness always answers; readiness is PostgreSQL answering `SELECT 1` (503 otherwise).

    `pool_of` finds the service's pool from the request (each keeps it in its own app state).
    """
    router = APIRouter()

    @router.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process is up and serving HTTP."""
        return {"status": "ok"}

    @router.get("/ready")
    async def ready(request: Request, response: Response) -> dict[str, str]:
        """Readiness: PostgreSQL answers `SELECT 1`; 503 otherwise."""
        if await database_ready(pool_of(request)):
            return {"status": "ready"}
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return {"status": "unavailable", "detail": "PostgreSQL is not reachable"}

    return router
