"""Bodies of the batch endpoints: many requests of one kind in one HTTP call.

A batch endpoint (`/reserve_batch`, `/calculate_price_batch`, `/authorise_batch`, ...) takes
the items its single endpoint takes and answers one `Outcome` per item, in the same order: the
status code and body the single endpoint would have given. One item's refusal (404, 409, 422)
never fails the others; a 5xx outcome means "this item was not done, retry it". The batch as a
whole answers 5xx only when nothing in it was done (PostgreSQL down), so it may be sent again.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")

# One request carries at most this many items: the caller's coalescer cuts batches to it.
MAX_BATCH_ITEMS = 500


class BatchRequest(BaseModel, Generic[T]):
    items: list[T] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class Outcome(BaseModel, Generic[T]):
    """One item's answer: `result` when `status` is 200, else `detail` and the error class."""

    status: int = 200
    result: T | None = None
    detail: str | None = None
    error: str | None = None


class BatchResponse(BaseModel, Generic[T]):
    outcomes: list[Outcome[T]]


@cache
def batch_response_type(item: type[Any]) -> tuple[type[BatchResponse[Any]], type[Outcome[Any]]]:
    """`BatchResponse[item]` and `Outcome[item]`, built once: pydantic makes a new class (a
    costly step) for a parametrisation it no longer holds."""
    return BatchResponse[item], Outcome[item]  # type: ignore[valid-type]
