"""Bodies of the gateway's public API, one family per resource (users, orders, dashboard)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from foodflow.contracts.delivery import CourierView
from foodflow.contracts.inventory import ItemId
from foodflow.contracts.orders import (
    MAX_ITEMS_PER_ORDER,
    MAX_QUANTITY,
    DeliveryAddress,
    OrderStatusUpdate,
    PricedItem,
    StatusChange,
)
from foodflow.contracts.pricing import PriceBreakdown, PromoCode
from foodflow.contracts.text import Text
from foodflow.gateway.board import BoardStats, OrderCard
from foodflow.gateway.ops import OpsReport
from foodflow.gateway.security import MIN_PASSWORD_LENGTH, Role

# --- users ------------------------------------------------------------------------------------

Email = Annotated[
    Text, Field(pattern=r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+\.[^@\s\x00-\x1f]+$", max_length=254)
]


class UserCreate(BaseModel):
    """A customer's sign-up: no role, no courier (a body naming either is refused)."""

    model_config = ConfigDict(extra="forbid")

    email: Email
    name: Text = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")
    # Length alone; common and guessable passwords are refused by the sign-up (`security`).
    password: Text = Field(min_length=MIN_PASSWORD_LENGTH, max_length=200)


class CourierAccountCreate(UserCreate):
    """A courier's account, bound to a courier of the delivery service (`GET /couriers`)."""

    courier_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")


class UserPublic(BaseModel):
    user_id: uuid.UUID
    email: str
    name: str
    role: Role
    courier_id: str | None = None


class SignUpAccepted(BaseModel):
    """The same answer whether the email was free or not (no account enumeration)."""

    detail: str


class Login(BaseModel):
    email: Email
    password: Text = Field(min_length=1, max_length=200)


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    user: UserPublic


# --- orders -----------------------------------------------------------------------------------


class OrderLineIn(BaseModel):
    item_id: ItemId
    quantity: int = Field(ge=1, le=MAX_QUANTITY)
    price: Any = Field(default=None, description="Ignored: prices come from the catalogue.")


class OrderCreate(BaseModel):
    items: list[OrderLineIn] = Field(min_length=1, max_length=MAX_ITEMS_PER_ORDER)
    delivery_address: DeliveryAddress
    promo_code: PromoCode | None = None
    payment_token: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[A-Za-z0-9_]+$",
        description="Test card: tok_visa, tok_declined, tok_insufficient_funds, tok_timeout",
    )


class OrderAccepted(BaseModel):
    order_id: uuid.UUID
    status: str
    status_url: str


class OrderPublic(BaseModel):
    order_id: uuid.UUID
    user_id: str
    status: str
    reason: str | None = None
    detail: str | None = None
    price: PriceBreakdown | None = None
    items: list[PricedItem] = Field(default_factory=list)
    timeline: list[StatusChange] = Field(default_factory=list)
    delivery_address: DeliveryAddress | None = None
    created_at: datetime
    updated_at: datetime | None = None


class OrderPage(BaseModel):
    items: list[OrderPublic]
    total: int
    limit: int
    offset: int


# --- dashboard --------------------------------------------------------------------------------


class StockLevel(BaseModel):
    item_id: str
    name: str
    stock: int
    low: bool


class StockReport(BaseModel):
    threshold: int
    items: list[StockLevel]


class CourierBoard(BaseModel):
    """Couriers and their assignments, as the delivery service reports them."""

    delivery_service: bool
    message: str
    couriers: list[CourierView] = Field(default_factory=list)


class BoardSnapshot(BaseModel):
    orders: list[OrderCard]
    stats: BoardStats
    # The operations figures (lag, dead letters, health) as last measured.
    ops: OpsReport | None = None


class StoredOrder(BaseModel):
    status: str
    reason: str | None
    detail: str | None
    version: int
    total: Decimal | None
    currency: str | None
    created_at: datetime
    updated_at: datetime


class OrderTimeline(BaseModel):
    """One order: its live status (Redis), its final row (PostgreSQL) and every transition."""

    order_id: uuid.UUID
    current: OrderStatusUpdate | None
    stored: StoredOrder | None
    items: list[PricedItem]
    history: list[StatusChange]
    # "Name <email>" of the customer, when the order's user is a registered one.
    customer: str | None = None


class TestOrderLine(BaseModel):
    item_id: ItemId
    quantity: int = Field(ge=1, le=MAX_QUANTITY)


class TestOrderRequest(BaseModel):
    """Placed by the demo customer, always: there is no user to choose."""

    model_config = ConfigDict(extra="forbid")

    items: list[TestOrderLine] = Field(min_length=1)
    promo_code: str | None = Field(default=None, max_length=32)


class TestOrderAccepted(BaseModel):
    order_id: uuid.UUID
    topic: str
    user_id: str = Field(description="The demo customer, who placed it.")
