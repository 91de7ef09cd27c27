"""Price rules, pure: worked examples and properties that must hold for any order."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from foodflow.platform.config import PROJECT_ROOT
from foodflow.pricing_service.domain import (
    InvalidPricingRules,
    OrderLine,
    PricingRules,
    PromoCode,
    PromoKind,
    UnknownItems,
    UnknownPromoCode,
    load_rules,
    price_order,
    rules_from_dict,
)

RULES_FILE = PROJECT_ROOT / "config" / "pricing_rules.json"
DEFAULT_RULES = load_rules(RULES_FILE)


@pytest.fixture
def rules() -> PricingRules:
    return DEFAULT_RULES


def rules_with(**overrides: object) -> PricingRules:
    raw = json.loads(RULES_FILE.read_text())
    raw.update(overrides)
    return rules_from_dict(raw)


CATALOGUE = {
    "sushi-set": Decimal("25.50"),
    "pho-bo": Decimal("9.00"),
    "green-tea": Decimal("2.50"),
    "ramen": Decimal("13.00"),
}


def test_rules_file_loads_as_decimals(rules: PricingRules) -> None:
    assert rules.currency == "EUR"
    assert rules.delivery_fee == Decimal("2.99")
    assert rules.tax_percent == Decimal("7")
    assert rules.promo_codes["WELCOME5"] == PromoCode(
        "WELCOME5", PromoKind.FIXED, Decimal("5.00"), Decimal("15.00")
    )
    assert rules.promo_codes["LUNCH15"].kind is PromoKind.PERCENT


def test_seed_order_with_default_rules(rules: PricingRules) -> None:
    lines, breakdown = price_order(
        [OrderLine("sushi-set", 1, Decimal("25.50")), OrderLine("pho-bo", 2, Decimal("9.00"))],
        CATALOGUE,
        rules,
    )
    # 25.50 + 2 * 9.00 = 43.50 >= 40.00, so 10 % bulk discount = 4.35; 39.15 < 50.00 pays the
    # 2.99 delivery fee; no small-order fee; tax 7 % of 42.14 = 2.9498 -> 2.95.
    assert breakdown.subtotal == Decimal("43.50")
    assert breakdown.discount == Decimal("4.35")
    assert breakdown.delivery_fee == Decimal("2.99")
    assert breakdown.small_order_fee == Decimal("0.00")
    assert breakdown.tax == Decimal("2.95")
    assert breakdown.total == Decimal("45.09")
    assert breakdown.price_mismatches == ()
    assert [line.line_total for line in lines] == [Decimal("25.50"), Decimal("18.00")]


def test_small_order_pays_fee_and_delivery(rules: PricingRules) -> None:
    _, breakdown = price_order([OrderLine("green-tea", 2)], CATALOGUE, rules)
    # 5.00 < 10.00: small-order fee 1.50, delivery 2.99, tax 7 % of 9.49 = 0.6643 -> 0.66.
    assert (breakdown.subtotal, breakdown.small_order_fee, breakdown.delivery_fee) == (
        Decimal("5.00"),
        Decimal("1.50"),
        Decimal("2.99"),
    )
    assert breakdown.tax == Decimal("0.66")
    assert breakdown.total == Decimal("10.15")


def test_delivery_is_free_at_the_threshold_after_discount(rules: PricingRules) -> None:
    # 2 * 25.50 + 13.00 = 64.00; bulk 6.40 -> 57.60 >= 50.00: free delivery.
    _, breakdown = price_order([OrderLine("sushi-set", 2), OrderLine("ramen", 1)], CATALOGUE, rules)
    assert breakdown.discount == Decimal("6.40")
    assert breakdown.delivery_fee == Decimal("0.00")
    # 25.50 + 13.00 + 17.00 = 55.50; bulk 5.55 -> 49.95 < 50.00: the discount takes the
    # order below the threshold, so delivery is charged.
    _, breakdown = price_order(
        [OrderLine("sushi-set", 1), OrderLine("ramen", 1), OrderLine("special", 1)],
        {**CATALOGUE, "special": Decimal("17.00")},
        rules,
    )
    assert breakdown.subtotal == Decimal("55.50")
    assert breakdown.discount == Decimal("5.55")
    assert breakdown.delivery_fee == Decimal("2.99")


def test_fixed_promo_applies_from_its_minimum(rules: PricingRules) -> None:
    _, breakdown = price_order([OrderLine("ramen", 2)], CATALOGUE, rules, "welcome5")
    assert breakdown.subtotal == Decimal("26.00")
    assert breakdown.discount == Decimal("5.00")
    assert breakdown.promo_code == "WELCOME5"
    assert breakdown.promo_applied is True

    _, breakdown = price_order([OrderLine("ramen", 1)], CATALOGUE, rules, "WELCOME5")
    assert breakdown.discount == Decimal("0.00")
    assert breakdown.promo_applied is False


def test_percent_promo_adds_to_bulk_discount(rules: PricingRules) -> None:
    _, breakdown = price_order(
        [OrderLine("sushi-set", 1), OrderLine("pho-bo", 2)], CATALOGUE, rules, "LUNCH15"
    )
    # 10 % bulk (4.35) + 15 % promo (6.525 -> 6.53) of 43.50.
    assert breakdown.discount == Decimal("10.88")


def test_discount_never_exceeds_subtotal() -> None:
    rules = rules_with(promo_codes={"ALL": {"kind": "fixed", "amount": "1000.00"}})
    _, breakdown = price_order([OrderLine("green-tea", 1)], CATALOGUE, rules, "ALL")
    assert breakdown.discount == breakdown.subtotal == Decimal("2.50")
    assert breakdown.total >= 0


def test_unknown_promo_code_is_an_error(rules: PricingRules) -> None:
    with pytest.raises(UnknownPromoCode, match="FREEBIE"):
        price_order([OrderLine("ramen", 1)], CATALOGUE, rules, "FREEBIE")


def test_unknown_items_are_named(rules: PricingRules) -> None:
    with pytest.raises(UnknownItems) as caught:
        price_order(
            [OrderLine("ramen", 1), OrderLine("unicorn", 1), OrderLine("dragon", 2)],
            CATALOGUE,
            rules,
        )
    assert caught.value.item_ids == ["dragon", "unicorn"]
    assert "dragon, unicorn" in str(caught.value)


def test_client_price_is_checked_not_charged(rules: PricingRules) -> None:
    lines, breakdown = price_order(
        [OrderLine("sushi-set", 1, Decimal("1.00")), OrderLine("pho-bo", 2, Decimal("9.00"))],
        CATALOGUE,
        rules,
    )
    assert lines[0].unit_price == Decimal("25.50")
    assert lines[0].price_mismatch is True
    assert lines[0].client_price == Decimal("1.00")
    assert lines[1].price_mismatch is False
    assert breakdown.price_mismatches == ("sushi-set",)
    assert breakdown.subtotal == Decimal("43.50")


def test_price_tolerance_allows_small_differences(rules: PricingRules) -> None:
    lines, _ = price_order(
        [OrderLine("sushi-set", 1, Decimal("25.49"))],
        CATALOGUE,
        rules,
        price_tolerance=Decimal("0.01"),
    )
    assert lines[0].price_mismatch is False


@pytest.mark.parametrize(
    "overrides",
    [
        {"delivery_fee": "-1"},
        {"tax_percent": "101"},
        {"delivery_fee": 2.99},
        {"small_order_fee": "abc"},
        {"promo_codes": {"X": {"kind": "gift", "amount": "1"}}},
        {"promo_codes": {"X": {"kind": "percent", "percent": "150"}}},
    ],
)
def test_invalid_rules_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(InvalidPricingRules):
        rules_with(**overrides)


def test_missing_rules_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidPricingRules):
        load_rules(tmp_path / "absent.json")


# --- properties ----------------------------------------------------------------------------

money = st.decimals(min_value=0, max_value=500, places=2, allow_nan=False, allow_infinity=False)
percent = st.decimals(min_value=0, max_value=100, places=2, allow_nan=False, allow_infinity=False)


@st.composite
def any_rules(draw: st.DrawFn) -> PricingRules:
    promos = {
        "FIXED": PromoCode("FIXED", PromoKind.FIXED, draw(money), draw(money)),
        "PCT": PromoCode("PCT", PromoKind.PERCENT, draw(percent), draw(money)),
    }
    return PricingRules(
        currency="EUR",
        delivery_fee=draw(money),
        free_delivery_threshold=draw(money),
        small_order_threshold=draw(money),
        small_order_fee=draw(money),
        bulk_discount_threshold=draw(money),
        bulk_discount_percent=draw(percent),
        tax_percent=draw(percent),
        promo_codes=MappingProxyType(promos),
    )


@st.composite
def orders(draw: st.DrawFn) -> tuple[list[OrderLine], dict[str, Decimal]]:
    count = draw(st.integers(min_value=1, max_value=8))
    catalogue = {f"item-{i}": draw(money) for i in range(count)}
    lines = [
        OrderLine(item_id, draw(st.integers(min_value=1, max_value=100)), draw(st.none() | money))
        for item_id in catalogue
    ]
    return lines, catalogue


def has_cents(amount: Decimal) -> bool:
    return amount.as_tuple().exponent == -2


@given(orders(), any_rules(), st.sampled_from([None, "FIXED", "PCT", "pct"]))
def test_breakdown_adds_up_for_any_order(
    order: tuple[list[OrderLine], dict[str, Decimal]],
    rules: PricingRules,
    promo_code: str | None,
) -> None:
    lines, catalogue = order
    priced, b = price_order(lines, catalogue, rules, promo_code)

    amounts = [b.subtotal, b.discount, b.delivery_fee, b.small_order_fee, b.tax, b.total]
    assert all(amount >= 0 for amount in amounts)
    assert all(has_cents(amount) for amount in amounts)
    assert b.discount <= b.subtotal
    assert b.total == b.subtotal - b.discount + b.delivery_fee + b.small_order_fee + b.tax
    assert b.subtotal == sum(line.line_total for line in priced)
    assert all(line.unit_price == catalogue[line.item_id] for line in priced)


@given(orders(), st.sampled_from([None, "WELCOME5", "LUNCH15"]))
def test_default_rules_hold_for_any_order(
    order: tuple[list[OrderLine], dict[str, Decimal]], promo_code: str | None
) -> None:
    lines, catalogue = order
    _, b = price_order(lines, catalogue, DEFAULT_RULES, promo_code)
    assert b.total == b.subtotal - b.discount + b.delivery_fee + b.small_order_fee + b.tax
    assert b.discount <= b.subtotal
    assert b.total >= 0
    assert (b.delivery_fee == 0) == (b.subtotal - b.discount >= Decimal("50.00"))
    assert (b.small_order_fee > 0) == (b.subtotal < Decimal("10.00"))
