"""Money on the wire: amounts are Decimal euros; ledgers and providers count integer cents."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def to_cents(amount: Decimal) -> int:
    """A money amount as integer cents, rounded half-up."""
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
