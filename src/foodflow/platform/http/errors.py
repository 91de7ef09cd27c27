"""The one place where a service's domain errors and an unreachable PostgreSQL become HTTP.

Every service answers with the same body (`contracts.errors.ErrorBody`): the domain error's
message and class name with the status code its table gives, or 503 while PostgreSQL (or
another dependency, `ServiceUnavailable`) is down, so callers know to retry rather than to fail
the order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TypeVar

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from foodflow.contracts.batch import Outcome, batch_response_type
from foodflow.platform.db.pool import DATABASE_UNAVAILABLE_ERRORS
from foodflow.platform.errors import ServiceUnavailable

log = logging.getLogger(__name__)

ErrorTable = Sequence[tuple[type[Exception], int]]
M = TypeVar("M", bound=BaseModel)


def install_error_handlers(app: FastAPI, domain_errors: ErrorTable) -> None:
    """`domain_errors`: (error class, status code) pairs, most specific first."""

    async def domain_error(request: Request, exc: Exception) -> JSONResponse:
        code = status_of(exc, domain_errors) or status.HTTP_500_INTERNAL_SERVER_ERROR
        return JSONResponse(
            status_code=code, content={"detail": str(exc), "error": type(exc).__name__}
        )

    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("PostgreSQL unavailable during %s: %s", request.url.path, exc)
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            content={"detail": "PostgreSQL is not reachable, retry later", "error": "Unavailable"},
        )

    async def dependency_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("A dependency was unavailable during %s: %s", request.url.path, exc)
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            content={
                "detail": "a dependency is not reachable, retry later",
                "error": "Unavailable",
            },
        )

    for error_type in {error for error, _ in domain_errors}:
        app.add_exception_handler(error_type, domain_error)
    for error_type in DATABASE_UNAVAILABLE_ERRORS:
        app.add_exception_handler(error_type, database_unavailable)
    if status_of(ServiceUnavailable(), domain_errors) is None:
        # A store or client that gave up on its dependency (e.g. the order state store while
        # PostgreSQL is down): the caller retries, as for PostgreSQL itself.
        app.add_exception_handler(ServiceUnavailable, dependency_unavailable)


def status_of(exc: Exception, domain_errors: ErrorTable) -> int | None:
    """The status code `domain_errors` gives `exc`, None for an error it does not list."""
    return next((code for error, code in domain_errors if isinstance(exc, error)), None)


def batch_response(
    model: type[M], answers: Sequence[M | Exception], domain_errors: ErrorTable
) -> Response:
    """One `Outcome` per answer, as the single endpoint would have answered that item.

    A domain error becomes that item's 4xx; any other exception is a bug and is raised, so the
    whole batch answers 500 (and its transaction, if any, has rolled back already).
    The body is serialised here, once, rather than validated again by FastAPI.
    """
    response_type, outcome_type = batch_response_type(model)
    outcomes: list[Outcome[M]] = []
    for answer in answers:
        if isinstance(answer, Exception):
            code = status_of(answer, domain_errors)
            if code is None:
                raise answer
            outcomes.append(
                outcome_type(status=code, detail=str(answer), error=type(answer).__name__)
            )
        else:
            outcomes.append(outcome_type(result=answer))
    body = response_type(outcomes=outcomes)
    return Response(content=body.model_dump_json(), media_type="application/json")
