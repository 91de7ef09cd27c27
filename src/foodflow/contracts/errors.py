"""The error body every foodflow service answers 4xx/5xx with."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorBody(BaseModel):
    """`detail` is a message, or FastAPI's list of field errors for a malformed request."""

    detail: str | list[dict[str, Any]]
    error: str | None = None


# For `APIRouter(responses=...)`: documents what the error handlers really send.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (404, 409, 422, 503)
}
