"""Text every store can hold, and numbers within their bounds: the shared field types.

PostgreSQL refuses NUL in text and UTF-8 has no unpaired surrogates (Python's JSON parser lets
both through), so a text field of any body or message is `Text` or a type built on it: such
input is refused where it arrives (422, a dead letter) instead of failing a write later.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field


def storable_text(value: str) -> str:
    """`value` unchanged; ValueError if it holds NUL or an unpaired surrogate."""
    if "\x00" in value:
        raise ValueError("text must not contain NUL (\\u0000)")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text must not contain unpaired surrogates") from None
    return value


Text = Annotated[str, AfterValidator(storable_text)]
# Degrees on the map; non-finite numbers (`1e999` parses as infinity) are refused too.
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
# How far into a listing a page may start: far beyond any real listing, well inside int64.
MAX_PAGE_OFFSET = 1_000_000
PageOffset = Annotated[int, Field(ge=0, le=MAX_PAGE_OFFSET)]
