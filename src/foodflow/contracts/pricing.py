"""Bodies of the pricing service's `/calculate_price`."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field

from foodflow.contracts.inventory import ItemId
from foodflow.contracts.text import Text

PromoCode = Annotated[Text, Field(max_length=32)]


class PriceLineIn(BaseModel):
    item_id: ItemId
    quantity: int = Field(ge=1, le=100)
    price: Decimal | None = Field(default=None, ge=0, le=Decimal("100000"), allow_inf_nan=False)


class PriceRequest(BaseModel):
    items: list[PriceLineIn] = Field(min_length=1, max_length=50)
    promo_code: PromoCode | None = None
    order_id: Text | None = Field(default=None, max_length=64)


class PriceLine(BaseModel):
    item_id: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal
    client_price: Decimal | None = None
    price_mismatch: bool = False


class PriceBreakdown(BaseModel):
    """All amounts in `currency`, Decimal rounded half-up to cents."""

    subtotal: Decimal
    discount: Decimal
    delivery_fee: Decimal
    small_order_fee: Decimal
    tax: Decimal
    total: Decimal
    currency: str = "EUR"
    promo_code: Text | None = None
    promo_applied: bool = False  # False when the code is known but its min_subtotal is not met
    price_mismatches: list[str] = Field(default_factory=list)


class PriceResponse(BaseModel):
    lines: list[PriceLine]
    breakdown: PriceBreakdown
