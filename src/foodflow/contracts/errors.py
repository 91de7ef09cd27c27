"""The error body every foodflow service answers 4xx/5xx with: RFC 9457 problem details.

    HTTP/1.1 404 Not Found
    Content-Type: application/problem+json

    {"type": "urn:foodflow:problem:reservation-not-found", "title": "Reservation not found",
     "status": 404, "detail": "no reservation for order 5f…", "request_id": "9c1e…"}

`type` tells a program what went wrong (a URN per domain error; `about:blank` when the status
code says it all, and `title` is then its phrase); `detail` tells a person. Neither carries
internal text (exception messages, hosts, ports): that goes to the service's log, on a line
with the same `request_id` (`X-Request-ID` of the request when it sent a usable one). A refused
request body lists its refused fields in `errors`.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

PROBLEM_JSON = "application/problem+json"
ABOUT_BLANK = "about:blank"
_WORD_START = re.compile(r"(?<!^)(?=[A-Z])")


class FieldError(BaseModel):
    """One refused part of a request: where, dotted (`body.items.0.quantity`), and why."""

    field: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem details object (with the extension members `request_id`, `errors`)."""

    type: str = Field(ABOUT_BLANK, description="What kind of problem: a URI to branch on.")
    title: str = Field(description="A short summary of the kind, the same for every instance.")
    status: int = Field(ge=400, le=599, description="The HTTP status code, repeated.")
    detail: str = Field(description="What went wrong with this request, for a person.")
    request_id: str | None = Field(
        None, description="Quote it when asking about this error: the service logged it."
    )
    errors: list[FieldError] | None = Field(None, description="The refused fields (422).")


def problem_type(error_name: str) -> str:
    """The `type` of a domain error: `UnknownItems` → `urn:foodflow:problem:unknown-items`."""
    return "urn:foodflow:problem:" + _WORD_START.sub("-", error_name).lower()


def problem_title(error_name: str) -> str:
    """The `title` of a domain error: `UnknownItems` → `Unknown items`."""
    return _WORD_START.sub(" ", error_name).capitalize()


_DESCRIPTIONS = {
    400: "The request is malformed.",
    401: "No valid credentials.",
    403: "The caller may not do this.",
    404: "No such resource.",
    409: "The resource's state does not allow this now.",
    413: "The request body is larger than the limit.",
    422: "The request is not valid; `errors` lists the refused fields.",
    429: "Too many attempts; retry after `Retry-After` seconds.",
    500: "An internal error; quote `request_id`.",
    503: "A dependency is unavailable; retry later.",
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """For `responses=` of an app or a router: the problem details each code may answer, in
    `PROBLEM_JSON` (the schema `Problem`, which `platform.http.app` adds to the components)."""
    schema = {"$ref": "#/components/schemas/Problem"}
    return {
        code: {
            "description": _DESCRIPTIONS.get(code, "A problem."),
            "content": {PROBLEM_JSON: {"schema": schema}},
        }
        for code in codes or tuple(_DESCRIPTIONS)
    }


# What any route of any service may answer: every problem above.
ERROR_RESPONSES = problem_responses()
