"""Use case of the pricing service: price orders at catalogue prices under the rules.

A batch of orders needs one catalogue lookup for all of its items; each order is then priced
on its own, so one bad order (an unknown item or promo code) is refused alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from foodflow.pricing_service.domain import (
    Breakdown,
    OrderLine,
    PricedLine,
    PricingError,
    PricingRules,
    price_order,
)

log = logging.getLogger(__name__)


class Catalogue(Protocol):
    async def prices(self, item_ids: Iterable[str]) -> Mapping[str, Decimal]: ...


@dataclass(frozen=True)
class PriceOrder:
    order_id: str | None
    lines: Sequence[OrderLine]
    promo_code: str | None = None


@dataclass(frozen=True)
class PricedOrder:
    lines: list[PricedLine]
    breakdown: Breakdown


@dataclass(frozen=True)
class Pricing:
    """What pricing an order needs besides the order: the catalogue and the rules."""

    catalogue: Catalogue
    rules: PricingRules
    price_tolerance: Decimal


def _price(pricing: Pricing, order: PriceOrder, prices: Mapping[str, Decimal]) -> PricedOrder:
    lines, breakdown = price_order(
        order.lines,
        prices,
        pricing.rules,
        order.promo_code,
        price_tolerance=pricing.price_tolerance,
    )
    for line in lines:
        if line.price_mismatch:
            log.warning(
                "Price mismatch for %s: client sent %s, catalogue price %s charged order_id=%s",
                line.item_id,
                line.client_price,
                line.unit_price,
                order.order_id,
            )
    return PricedOrder(lines, breakdown)


async def price_one(pricing: Pricing, order: PriceOrder) -> PricedOrder:
    """Price one order; its `PricingError` is raised."""
    prices = await pricing.catalogue.prices(line.item_id for line in order.lines)
    return _price(pricing, order, prices)


async def price_many(
    pricing: Pricing, orders: Sequence[PriceOrder]
) -> list[PricedOrder | PricingError]:
    """Price each order as if alone, with one catalogue lookup; an order's error is its answer."""
    prices = await pricing.catalogue.prices(
        {line.item_id for order in orders for line in order.lines}
    )
    answers: list[PricedOrder | PricingError] = []
    for order in orders:
        try:
            answers.append(_price(pricing, order, prices))
        except PricingError as exc:
            answers.append(exc)
    return answers
