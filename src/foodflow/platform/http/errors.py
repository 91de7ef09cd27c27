"""The one place where errors become HTTP: RFC 9457 problem details from every service.

Every refusal and failure a service answers is a `contracts.errors.Problem` in
`application/problem+json`: FastAPI's and Starlette's `HTTPException` (401, 403, 404, 405,
413, ...), a refused body (422, the fields in `errors`), a domain error (the status its table
gives), an unreachable PostgreSQL or other dependency (503: callers retry rather than fail the
order) and any other exception (500). What a 5xx was really about — exception text, which host
and port did not answer — is logged with the request id the body carries, never returned.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, TypeVar

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from foodflow.contracts.batch import Outcome, batch_response_type
from foodflow.contracts.errors import (
    ABOUT_BLANK,
    PROBLEM_JSON,
    FieldError,
    Problem,
    problem_title,
    problem_type,
)
from foodflow.platform.db.pool import DATABASE_UNAVAILABLE_ERRORS
from foodflow.platform.errors import ServiceUnavailable

log = logging.getLogger(__name__)

ErrorTable = Sequence[tuple[type[Exception], int]]
M = TypeVar("M", bound=BaseModel)

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's request id is reused (and logged) only if it looks like one: no log injection.
_USABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
UNAVAILABLE = "a service this one depends on is unavailable; retry in a moment"
INTERNAL_ERROR = "an internal error occurred; quote the request_id when reporting it"
# Pydantic's message for a pattern names the pattern: what a field must look like is ours to
# say, the regular expression behind it is not.
_PATTERN_MESSAGE = "has characters or a form that is not allowed here"
_MAX_FIELDS_IN_DETAIL = 3


def request_id_of(request: Request) -> str:
    """The caller's `X-Request-ID` if usable, else a new one; the same for one request."""
    known = getattr(request.state, "request_id", None)
    if isinstance(known, str):
        return known
    sent = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = sent if _USABLE_REQUEST_ID.match(sent) else uuid.uuid4().hex
    request.state.request_id = request_id
    return request_id


def problem(
    request: Request,
    code: int,
    detail: str,
    *,
    type_: str = ABOUT_BLANK,
    title: str | None = None,
    errors: list[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The problem details response: `title` defaults to the status code's phrase."""
    request_id = request_id_of(request)
    body = Problem(
        type=type_,
        title=title or _phrase(code),
        status=code,
        detail=_printable(detail),
        request_id=request_id,
        errors=errors,
    )
    return Response(
        body.model_dump_json(exclude_none=True),
        status_code=code,
        media_type=PROBLEM_JSON,
        headers={**(headers or {}), REQUEST_ID_HEADER: request_id},
    )


def domain_problem(
    request: Request, exc: Exception, code: int, headers: Mapping[str, str] | None = None
) -> Response:
    """A domain error's refusal: its message is written for the caller, its class names the
    problem's type."""
    name = type(exc).__name__
    return problem(
        request,
        code,
        str(exc),
        type_=problem_type(name),
        title=problem_title(name),
        headers=headers,
    )


def unavailable(
    request: Request, exc: BaseException, code: int = status.HTTP_503_SERVICE_UNAVAILABLE
) -> Response:
    """503 (or `code`) for a dependency that did not answer; which one, and where, goes to the
    log."""
    request_id = request_id_of(request)
    log.warning(
        "Answering %d to %s %s [request %s]: %s: %s",
        code,
        request.method,
        request.url.path,
        request_id,
        type(exc).__name__,
        exc,
    )
    return problem(request, code, UNAVAILABLE)


def install_problem_details(app: FastAPI) -> None:
    """Answer every error of `app` with problem details (see the module's docstring)."""

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else _phrase(exc.status_code)
        return problem(request, exc.status_code, detail, headers=exc.headers)

    async def refused_body(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = field_errors(exc.errors())
        return problem(
            request,
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            summary(errors),
            title="Request not valid",
            errors=errors,
        )

    async def dependency_unavailable(request: Request, exc: Exception) -> Response:
        return unavailable(request, exc)

    async def internal_error(request: Request, exc: Exception) -> Response:
        request_id = request_id_of(request)
        log.error(
            "Unhandled %s on %s %s [request %s]",
            type(exc).__name__,
            request.method,
            request.url.path,
            request_id,
            exc_info=exc,
        )
        return problem(request, status.HTTP_500_INTERNAL_SERVER_ERROR, INTERNAL_ERROR)

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, refused_body)
    for error_type in (*DATABASE_UNAVAILABLE_ERRORS, ServiceUnavailable):
        app.add_exception_handler(error_type, dependency_unavailable)
    app.add_exception_handler(Exception, internal_error)


def install_error_handlers(app: FastAPI, domain_errors: ErrorTable) -> None:
    """`domain_errors`: (error class, status code) pairs, most specific first. An error the
    table gives a 5xx is answered like any unavailable dependency: its text stays in the log."""

    async def domain_error(request: Request, exc: Exception) -> Response:
        code = status_of(exc, domain_errors) or status.HTTP_500_INTERNAL_SERVER_ERROR
        if code >= status.HTTP_500_INTERNAL_SERVER_ERROR:
            return unavailable(request, exc, code)
        return domain_problem(request, exc, code)

    for error_type in {error for error, _ in domain_errors}:
        app.add_exception_handler(error_type, domain_error)


def status_of(exc: Exception, domain_errors: ErrorTable) -> int | None:
    """The status code `domain_errors` gives `exc`, None for an error it does not list."""
    return next((code for error, code in domain_errors if isinstance(exc, error)), None)


def field_errors(errors: Sequence[Any]) -> list[FieldError]:
    """Pydantic's errors as `FieldError`s: where and why, never the input echoed back nor a
    pattern."""
    found = []
    for error in errors:
        location = ".".join(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "is not valid"))
        if error.get("type") == "string_pattern_mismatch":
            message = _PATTERN_MESSAGE
        found.append(FieldError(field=_printable(location), message=_printable(message)))
    return found


def summary(errors: Sequence[FieldError]) -> str:
    """`detail` of a 422: its first few fields, for a person reading one line."""
    shown = "; ".join(f"{e.field}: {e.message}" for e in errors[:_MAX_FIELDS_IN_DETAIL])
    more = len(errors) - _MAX_FIELDS_IN_DETAIL
    return f"the request is not valid: {shown}" + (f" (and {more} more)" if more > 0 else "")


def batch_response(
    model: type[M], answers: Sequence[M | Exception], domain_errors: ErrorTable
) -> Response:
    """One `Outcome` per answer, as the single endpoint would have answered that item.

    A domain error becomes that item's 4xx (its message and class, which the caller's client
    reads); any other exception is a bug and is raised, so the whole batch answers 500 (and its
    transaction, if any, has rolled back already). A domain error the table gives a 5xx (a
    provider that timed out) keeps its class but not its text: the caller retries it.
    The body is serialised here, once, rather than validated again by FastAPI.
    """
    response_type, outcome_type = batch_response_type(model)
    outcomes: list[Outcome[M]] = []
    for answer in answers:
        if isinstance(answer, Exception):
            code = status_of(answer, domain_errors)
            if code is None:
                raise answer
            detail = str(answer) if code < status.HTTP_500_INTERNAL_SERVER_ERROR else UNAVAILABLE
            outcomes.append(outcome_type(status=code, detail=detail, error=type(answer).__name__))
        else:
            outcomes.append(outcome_type(result=answer))
    body = response_type(outcomes=outcomes)
    return Response(content=body.model_dump_json(), media_type="application/json")


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Error"


def _printable(text: str) -> str:
    """`text` with unpaired surrogates escaped: JSON cannot carry them."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
