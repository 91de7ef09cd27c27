"""Bodies of the inventory service's endpoints."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field

from foodflow.contracts.text import Text

# Catalogue ids are plain slugs; anything else (NUL, control characters, emoji) is refused
# at the edge instead of reaching PostgreSQL.
ItemId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]


class StockLine(BaseModel):
    item_id: ItemId
    quantity: int = Field(ge=1, le=100)


class CheckInventoryRequest(BaseModel):
    items: list[StockLine] = Field(min_length=1, max_length=50)
    order_id: Text | None = Field(default=None, max_length=64)  # only for the log lines


class ItemAvailability(BaseModel):
    item_id: str
    requested: int
    in_stock: int
    available: bool
    known: bool


class CheckInventoryResponse(BaseModel):
    available: bool
    items: list[ItemAvailability]


class ReserveRequest(BaseModel):
    order_id: UUID
    items: list[StockLine] = Field(min_length=1, max_length=50)


class ReservationState(BaseModel):
    """Outcome of reserve/commit/release; the same request twice gives the same answer."""

    order_id: UUID
    state: str  # RESERVED | COMMITTED | RELEASED | REJECTED
    reserved: bool
    unknown_items: list[str] = Field(default_factory=list)
    short_items: list[str] = Field(default_factory=list)


class OrderRef(BaseModel):
    order_id: UUID


class MenuItem(BaseModel):
    item_id: str
    name: str
    price: Decimal
    stock: int
    # Offered by its restaurant now (the menu lists only these; the catalogue lists every item).
    available: bool = True
