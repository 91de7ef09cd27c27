"""Price rules: pure functions over Decimal, no I/O beyond reading the rules file.

The catalogue price is the truth. A price the client sends is only compared with it: a
difference is reported (the service logs it), never charged.

Order of the rules, each amount rounded half-up to cents as soon as it is computed:

1. subtotal = sum(catalogue unit price * quantity)
2. discount = bulk discount (percent of subtotal, when subtotal >= bulk threshold)
   + promo discount (fixed amount or percent of subtotal, when subtotal >= its min_subtotal),
   capped at the subtotal
3. delivery fee, waived when subtotal - discount >= free delivery threshold
4. small-order fee, when subtotal < small-order threshold
5. tax = tax percent of (subtotal - discount + delivery fee + small-order fee)
6. total = subtotal - discount + delivery fee + small-order fee + tax
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

CENTS = Decimal("0.01")
ZERO = Decimal("0.00")
HUNDRED = Decimal(100)


class PricingError(Exception):
    """A request the rules cannot price; the message is meant for the caller."""


class UnknownItems(PricingError):
    def __init__(self, item_ids: Iterable[str]) -> None:
        self.item_ids = sorted(set(item_ids))
        super().__init__(f"unknown items: {', '.join(self.item_ids)}")


class UnknownPromoCode(PricingError):
    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(f"unknown promo code: {code}")


class InvalidPricingRules(ValueError):
    """The rules file is missing a key or holds a value the rules cannot use."""


class PromoKind(StrEnum):
    FIXED = "fixed"
    PERCENT = "percent"


@dataclass(frozen=True)
class PromoCode:
    code: str
    kind: PromoKind
    value: Decimal  # an amount for FIXED, a percentage for PERCENT
    min_subtotal: Decimal = ZERO


@dataclass(frozen=True)
class PricingRules:
    currency: str
    delivery_fee: Decimal
    free_delivery_threshold: Decimal
    small_order_threshold: Decimal
    small_order_fee: Decimal
    bulk_discount_threshold: Decimal
    bulk_discount_percent: Decimal
    tax_percent: Decimal
    promo_codes: Mapping[str, PromoCode] = field(default_factory=lambda: MappingProxyType({}))

    def promo(self, code: str) -> PromoCode:
        """The promo for `code` (case and surrounding blanks ignored), or UnknownPromoCode."""
        promo = self.promo_codes.get(normalise_promo_code(code))
        if promo is None:
            raise UnknownPromoCode(code)
        return promo


@dataclass(frozen=True)
class OrderLine:
    item_id: str
    quantity: int
    client_price: Decimal | None = None


@dataclass(frozen=True)
class PricedLine:
    item_id: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal
    client_price: Decimal | None = None
    price_mismatch: bool = False


@dataclass(frozen=True)
class Breakdown:
    subtotal: Decimal
    discount: Decimal
    delivery_fee: Decimal
    small_order_fee: Decimal
    tax: Decimal
    total: Decimal
    currency: str
    promo_code: str | None = None
    promo_applied: bool = False
    price_mismatches: tuple[str, ...] = ()


def round_cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENTS, rounding=ROUND_HALF_UP)


def normalise_promo_code(code: str) -> str:
    return code.strip().upper()


def percent_of(amount: Decimal, percent: Decimal) -> Decimal:
    return round_cents(amount * percent / HUNDRED)


def _decimal(raw: Mapping[str, Any], key: str, *, maximum: Decimal | None = None) -> Decimal:
    if key not in raw:
        raise InvalidPricingRules(f"missing key {key!r}")
    value = raw[key]
    if isinstance(value, float):
        # A JSON float has already lost its exact cents; the file must quote money as strings.
        raise InvalidPricingRules(f"{key!r} must be a string or an integer, not a float")
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise InvalidPricingRules(f"{key!r} is not a number: {value!r}") from exc
    if not amount.is_finite() or amount < 0:
        raise InvalidPricingRules(f"{key!r} must be a finite number >= 0, got {value!r}")
    if maximum is not None and amount > maximum:
        raise InvalidPricingRules(f"{key!r} must be at most {maximum}, got {value!r}")
    return amount


def _promo(code: str, raw: Mapping[str, Any]) -> PromoCode:
    try:
        kind = PromoKind(str(raw.get("kind")))
    except ValueError as exc:
        raise InvalidPricingRules(f"promo {code!r}: kind must be 'fixed' or 'percent'") from exc
    if kind is PromoKind.FIXED:
        value = _decimal(raw, "amount")
    else:
        value = _decimal(raw, "percent", maximum=HUNDRED)
    min_subtotal = _decimal(raw, "min_subtotal") if "min_subtotal" in raw else ZERO
    return PromoCode(normalise_promo_code(code), kind, value, min_subtotal)


def rules_from_dict(raw: Mapping[str, Any]) -> PricingRules:
    """Validate the parsed rules file and build `PricingRules`; InvalidPricingRules if wrong."""
    promos_raw = raw.get("promo_codes", {})
    if not isinstance(promos_raw, Mapping):
        raise InvalidPricingRules("'promo_codes' must be an object")
    promos = {}
    for code, promo_raw in promos_raw.items():
        if not isinstance(promo_raw, Mapping):
            raise InvalidPricingRules(f"promo {code!r} must be an object")
        promo = _promo(code, promo_raw)
        promos[promo.code] = promo
    currency = raw.get("currency", "EUR")
    if not isinstance(currency, str) or not currency:
        raise InvalidPricingRules("'currency' must be a non-empty string")
    return PricingRules(
        currency=currency,
        delivery_fee=_decimal(raw, "delivery_fee"),
        free_delivery_threshold=_decimal(raw, "free_delivery_threshold"),
        small_order_threshold=_decimal(raw, "small_order_threshold"),
        small_order_fee=_decimal(raw, "small_order_fee"),
        bulk_discount_threshold=_decimal(raw, "bulk_discount_threshold"),
        bulk_discount_percent=_decimal(raw, "bulk_discount_percent", maximum=HUNDRED),
        tax_percent=_decimal(raw, "tax_percent", maximum=HUNDRED),
        promo_codes=MappingProxyType(promos),
    )


def load_rules(path: Path) -> PricingRules:
    """Read and validate the JSON rules file (config/pricing_rules.json by default)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidPricingRules(f"cannot read pricing rules from {path}: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise InvalidPricingRules(f"{path}: the rules must be a JSON object")
    return rules_from_dict(raw)


def _price_lines(
    lines: Iterable[OrderLine],
    catalogue_prices: Mapping[str, Decimal],
    price_tolerance: Decimal,
) -> list[PricedLine]:
    lines = list(lines)
    unknown = [line.item_id for line in lines if line.item_id not in catalogue_prices]
    if unknown:
        raise UnknownItems(unknown)
    priced = []
    for line in lines:
        if line.quantity < 1:
            raise PricingError(f"quantity of {line.item_id} must be at least 1")
        unit_price = round_cents(catalogue_prices[line.item_id])
        mismatch = (
            line.client_price is not None and abs(line.client_price - unit_price) > price_tolerance
        )
        priced.append(
            PricedLine(
                item_id=line.item_id,
                quantity=line.quantity,
                unit_price=unit_price,
                line_total=round_cents(unit_price * line.quantity),
                client_price=line.client_price,
                price_mismatch=mismatch,
            )
        )
    return priced


def price_order(
    lines: Iterable[OrderLine],
    catalogue_prices: Mapping[str, Decimal],
    rules: PricingRules,
    promo_code: str | None = None,
    *,
    price_tolerance: Decimal = ZERO,
) -> tuple[list[PricedLine], Breakdown]:
    """Price `lines` at catalogue prices under `rules`.

    Raises UnknownItems when an item is not in `catalogue_prices` and UnknownPromoCode for a
    code the rules do not know. A known promo whose min_subtotal is not reached is not an
    error: it is reported with `promo_applied=False`.
    """
    promo = rules.promo(promo_code) if promo_code else None
    priced = _price_lines(lines, catalogue_prices, price_tolerance)
    subtotal = round_cents(sum((line.line_total for line in priced), ZERO))

    bulk_discount = ZERO
    if subtotal >= rules.bulk_discount_threshold:
        bulk_discount = percent_of(subtotal, rules.bulk_discount_percent)
    promo_discount = ZERO
    promo_applied = promo is not None and subtotal >= promo.min_subtotal
    if promo is not None and promo_applied:
        if promo.kind is PromoKind.FIXED:
            promo_discount = round_cents(promo.value)
        else:
            promo_discount = percent_of(subtotal, promo.value)
    discount = min(bulk_discount + promo_discount, subtotal)

    discounted = subtotal - discount
    delivery_fee = ZERO if discounted >= rules.free_delivery_threshold else rules.delivery_fee
    delivery_fee = round_cents(delivery_fee)
    small_order_fee = round_cents(
        rules.small_order_fee if subtotal < rules.small_order_threshold else ZERO
    )
    tax = percent_of(discounted + delivery_fee + small_order_fee, rules.tax_percent)
    total = round_cents(max(discounted + delivery_fee + small_order_fee + tax, ZERO))

    breakdown = Breakdown(
        subtotal=subtotal,
        discount=round_cents(discount),
        delivery_fee=delivery_fee,
        small_order_fee=small_order_fee,
        tax=tax,
        total=total,
        currency=rules.currency,
        promo_code=promo.code if promo is not None else None,
        promo_applied=promo_applied,
        price_mismatches=tuple(
            dict.fromkeys(line.item_id for line in priced if line.price_mismatch)
        ),
    )
    return priced, breakdown
