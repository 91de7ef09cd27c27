"""The one place where a service's domain errors and an unreachable PostgreSQL become HTTP.

Every service answers with the same body (`contracts.errors.ErrorBody`): the domain error's
message and class name with the status code its table gives, or 503 while PostgreSQL is down,
so callers know to retry rather than to fail the order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from foodflow.db.pool import DATABASE_UNAVAILABLE_ERRORS

log = logging.getLogger(__name__)

ErrorTable = Sequence[tuple[type[Exception], int]]


def install_error_handlers(app: FastAPI, domain_errors: ErrorTable) -> None:
    """`domain_errors`: (error class, status code) pairs, most specific first."""

    async def domain_error(request: Request, exc: Exception) -> JSONResponse:
        code = next(code for error, code in domain_errors if isinstance(exc, error))
        return JSONResponse(
            status_code=code, content={"detail": str(exc), "error": type(exc).__name__}
        )

    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("PostgreSQL unavailable during %s: %s", request.url.path, exc)
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            content={"detail": "PostgreSQL is not reachable, retry later", "error": "Unavailable"},
        )

    for error_type in {error for error, _ in domain_errors}:
        app.add_exception_handler(error_type, domain_error)
    for error_type in DATABASE_UNAVAILABLE_ERRORS:
        app.add_exception_handler(error_type, database_unavailable)
